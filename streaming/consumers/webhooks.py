"""Webhook consumer: partner-facing events → `webhooks.events` and their deliveries.

Reads every service's topic. Events naming a customer and a tenant teach it whose
customer is whose (payment events name no tenant; they wait until it is known). Each
partner-facing event (store.partner_facing: customer, subscription, payment, invoice and
credit-note events but our plumbing) is kept once by event id and fanned out to its
tenant's endpoints in the same transaction: a redelivered event changes nothing. The
delivery worker (streaming/webhooks/worker.py) sends them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from streaming.consumers.runner import Delivery
from streaming.webhooks import store


class Fanout:
    def __init__(self, engine: Engine, schedule_scale: float) -> None:
        self.engine = engine
        self.scale = schedule_scale

    def __call__(self, delivery: Delivery) -> None:
        env = delivery.envelope
        data: dict[str, Any] = env.get("data") or {}
        customer, tenant = data.get("customer_id"), data.get("tenant_id")
        with self.engine.begin() as conn:
            if customer and tenant:
                store.remember_tenant(conn, str(customer), str(tenant), self.scale)
            if store.partner_facing(env["event_type"]):
                store.record(conn, env, self.scale)
            if env["event_type"] == "customer.erased" and customer:
                store.scrub(conn, str(customer))
