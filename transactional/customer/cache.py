"""Read-through cache of customers in Redis; the service works (slower) without it."""

from __future__ import annotations

import redis

from paywall.logs import get_logger
from transactional.common.redis_client import redis_client
from transactional.customer.models import Customer

TTL_SECONDS = 300
log = get_logger(__name__)


def _redis() -> redis.Redis | None:
    # A short wait: a slow cache must never be slower than the database behind it.
    return redis_client(timeout_seconds=0.2)


def _key(customer_id: str) -> str:
    return f"customer:v2:{customer_id}"  # v2: with the address


def get(customer_id: str) -> Customer | None:
    client = _redis()
    if client is None:
        return None
    try:
        raw = client.get(_key(customer_id))
    except redis.RedisError as exc:
        log.warning("customer.cache.unavailable", error=str(exc))
        return None
    return Customer.model_validate_json(raw) if raw else None


def put(customer: Customer) -> None:
    client = _redis()
    if client is None:
        return
    try:
        client.set(_key(str(customer.id)), customer.model_dump_json(), ex=TTL_SECONDS)
    except redis.RedisError as exc:
        log.warning("customer.cache.unavailable", error=str(exc))


def invalidate(customer_id: str) -> None:
    client = _redis()
    if client is None:
        return
    try:
        client.delete(_key(customer_id))
    except redis.RedisError as exc:
        # The TTL bounds how stale a read can be if this delete is lost.
        log.warning("customer.cache.invalidate_failed", error=str(exc), customer_id=customer_id)


def ping() -> None:
    client = _redis()
    if client is not None:
        client.ping()
