"""The erasure consumer: `customer.erased` reaches auth, payment and registration.

The customer service erases its row and shreds the customer's event key in one
transaction, and writes `customer.erased` to its outbox in the same one; the relay brings
it here. Each service's step (its own module, its own tables) runs in a transaction of
its own and finds nothing left to do on a second run, so the event is simply handled
again until every step is done: a crash between steps leaves the offset uncommitted and
the redelivery finishes the rest; Stripe out of reach is retried, then parked in the
dead-letter topic for a replay. The notification consumer forgets the customer on the
same event in its own group; the warehouse reads it from the lake (dim_customers).
"""

from __future__ import annotations

from sqlalchemy import Engine

from paywall.db import engine
from paywall.logs import get_logger
from paywall.settings import Settings
from streaming.consumers.runner import ConsumerLoop, Delivery, Retryable
from streaming.topics import EVENT_TOPICS
from transactional.auth import erasure as auth_erasure
from transactional.payment import erasure as payment_erasure
from transactional.payment.stripe_gateway import Gateway, Unavailable, stripe_gateway
from transactional.registration import erasure as registration_erasure

log = get_logger(__name__)
NAME = "erasure"


class Eraser:
    def __init__(self, db: Engine, gateway: Gateway) -> None:
        self.db = db
        self.gateway = gateway

    def __call__(self, delivery: Delivery) -> None:
        env = delivery.envelope
        if env["event_type"] != "customer.erased":
            return
        self.erase(str(env["data"]["customer_id"]))

    def erase(self, customer_id: str) -> None:
        """Every service's step for the customer; safe to run again from the start."""
        with self.db.begin() as conn:
            users = auth_erasure.forget(conn, customer_id)
        try:
            account = payment_erasure.forget(self.db, self.gateway, customer_id)
        except Unavailable as exc:
            raise Retryable(f"Stripe unavailable: {exc}") from exc
        with self.db.begin() as conn:
            signups = registration_erasure.forget(conn, customer_id)
        log.info(
            "erasure.done", customer_id=customer_id, users=users, account=account, signups=signups
        )


def handler(settings: Settings) -> Eraser:
    return Eraser(engine(settings), stripe_gateway(settings))


def consumer_loop(settings: Settings, group_id: str | None = None) -> ConsumerLoop:
    eraser = handler(settings)
    return ConsumerLoop(settings, NAME, [EVENT_TOPICS["customer"].name], eraser, group_id=group_id)
