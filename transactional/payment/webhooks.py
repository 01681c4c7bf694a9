"""Stripe webhooks: verified on the raw body, recorded once, applied monotonically.

Stripe retries for days and in no order, so: the `(source, event_id)` primary key makes a
redelivery a no-op, and payment statuses only move forward (repository.RANK), so a late
`payment_failed` cannot undo a `succeeded`. The event row and its effects commit together:
a crash in between rolls both back and Stripe's retry handles the event afresh.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import stripe
from fastapi import APIRouter, Header, Request
from sqlalchemy import Connection, Engine
from starlette.concurrency import run_in_threadpool

from paywall.logs import get_logger
from transactional.common import errors
from transactional.common.api_document import problems_answered
from transactional.common.deps import CurrentSettings, Db
from transactional.common.errors import DomainError
from transactional.common.problems import PROBLEM_JSON, ProblemModel
from transactional.payment import repository as repo
from transactional.payment.erasure import redacted
from transactional.payment.models import WebhookAck
from transactional.payment.stripe_gateway import verify_webhook

SOURCE = "stripe"
log = get_logger(__name__)
webhook_router = APIRouter(tags=["webhooks"])


def _bad_signature(detail: str) -> DomainError:
    return DomainError(errors.INVALID_WEBHOOK, detail)


@webhook_router.post(
    "/webhooks/stripe",
    status_code=202,
    response_model=WebhookAck,
    summary="Stripe events (signed with the endpoint secret)",
    responses={
        400: {
            "model": ProblemModel,
            "content": {PROBLEM_JSON: {}},
            "description": "Missing, forged or expired signature; nothing recorded",
        }
    },
    openapi_extra=problems_answered(errors.INVALID_WEBHOOK, errors.NOT_CONFIGURED),
)
async def stripe_webhook(
    request: Request,
    settings: CurrentSettings,
    db: Db,
    stripe_signature: Annotated[str | None, Header(alias="Stripe-Signature")] = None,
) -> WebhookAck:
    secret = settings.stripe_webhook_secret
    if secret is None:
        raise DomainError(errors.NOT_CONFIGURED, "STRIPE_WEBHOOK_SECRET is unset")
    payload = await request.body()  # the exact bytes Stripe signed, before any parsing
    if not stripe_signature:
        raise _bad_signature("missing Stripe-Signature header")
    try:
        verify_webhook(payload, stripe_signature, secret.get_secret_value())
        event = json.loads(payload)
    except stripe.SignatureVerificationError:
        raise _bad_signature("signature does not match or is older than 300 s") from None
    except ValueError:
        raise _bad_signature("body is not JSON") from None
    if not isinstance(event, dict) or not event.get("id") or not event.get("type"):
        raise _bad_signature("not a Stripe event")
    new = await run_in_threadpool(handle_event, db, event)
    return WebhookAck(duplicate=not new)


def handle_event(engine: Engine, event: dict[str, Any]) -> bool:
    """Record and apply one verified event; False when it was already handled."""
    event_id, event_type = str(event["id"]), str(event["type"])
    with engine.begin() as conn:
        if not repo.record_webhook(conn, SOURCE, event_id, event_type, redacted(event)):
            log.info("stripe.webhook.duplicate", event_id=event_id, type=event_type)
            return False
        handler = HANDLERS.get(event_type)
        obj = (event.get("data") or {}).get("object") or {}
        if handler is not None and isinstance(obj, dict):
            handler(conn, obj)
        repo.mark_webhook_processed(conn, SOURCE, event_id)
    log.info("stripe.webhook.handled", event_id=event_id, type=event_type, known=bool(handler))
    return True


def _payment_of(conn: Connection, intent_id: str | None, metadata: Any) -> Any:
    if not intent_id:
        return None
    payment_id = metadata.get("payment_id") if isinstance(metadata, dict) else None
    return repo.find_payment_for_intent(conn, intent_id, payment_id)


def _intent_succeeded(conn: Connection, intent: dict[str, Any]) -> None:
    payment_id = _payment_of(conn, intent.get("id"), intent.get("metadata"))
    if payment_id is not None:
        repo.record_charge(conn, payment_id, "succeeded", intent["id"])


def _intent_failed(conn: Connection, intent: dict[str, Any]) -> None:
    payment_id = _payment_of(conn, intent.get("id"), intent.get("metadata"))
    if payment_id is None:
        return
    error = intent.get("last_payment_error") or {}
    code = error.get("code") or "payment_failed"
    repo.record_charge(
        conn,
        payment_id,
        "failed",
        intent["id"],
        code,
        error.get("decline_code") or code,
        error.get("message") or "The payment failed.",
    )


def _charge_refunded(conn: Connection, charge: dict[str, Any]) -> None:
    # Refunds made outside our API (the Stripe dashboard) show up only here; they raise
    # the refunded total but emit nothing, since ours emit when they complete.
    intent_id = charge.get("payment_intent")
    payment_id = _payment_of(conn, intent_id, charge.get("metadata"))
    refunded = charge.get("amount_refunded")
    if payment_id is None or not isinstance(refunded, int):
        return
    # A refunded charge had succeeded, even if that event has not reached us yet; record
    # it first so `payment.succeeded` is still emitted exactly once.
    repo.record_charge(conn, payment_id, "succeeded", intent_id)
    repo.record_refunded_total(conn, payment_id, refunded)


HANDLERS = {
    "payment_intent.succeeded": _intent_succeeded,
    "payment_intent.payment_failed": _intent_failed,
    "charge.refunded": _charge_refunded,
}
