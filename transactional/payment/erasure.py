"""Erasure in payment: the Stripe customer deleted, the account and Stripe's echoes scrubbed.

Stripe holds the email, name, phone and cards of the customer; deleting it there is the
only way to reach them. The delete moves no money, and `erased_at` is set only after
Stripe said the customer is gone (or was already), so a crash between the two repeats
the delete, which then finds a 404: done. Payments and refunds keep their ids and
amounts (the books need them); they never held contact details.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, bindparam, text
from sqlalchemy.dialects.postgresql import JSONB

from transactional.payment.stripe_gateway import Gateway

# Keys of Stripe objects that carry a person's details; a webhook's copy is stored without.
PERSONAL_KEYS = frozenset(
    {"email", "name", "phone", "address", "shipping", "billing_details", "receipt_email"}
)


def redacted(value: Any) -> Any:
    """A copy of a Stripe payload with every personal field nulled, at any depth."""
    if isinstance(value, dict):
        return {k: None if k in PERSONAL_KEYS else redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redacted(v) for v in value]
    return value


def forget(engine: Engine, gateway: Gateway, customer_id: str) -> bool:
    """Delete the customer's Stripe customer and scrub the account; False: no account."""
    with engine.connect() as conn:
        account = conn.execute(
            text(
                "SELECT stripe_customer_id, erased_at FROM payment.accounts WHERE customer_id = :c"
            ),
            {"c": customer_id},
        ).first()
    if account is None:
        return False
    if account.erased_at is None:
        gateway.delete_customer(account.stripe_customer_id)  # raises: retried later
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE payment.accounts SET default_payment_method = NULL, card_brand = NULL, "
                "card_last4 = NULL, card_exp_month = NULL, card_exp_year = NULL, "
                "erased_at = coalesce(erased_at, now()), updated_at = now() "
                "WHERE customer_id = :c"
            ),
            {"c": customer_id},
        )
        # Stripe's webhooks about this customer arrived before their copies were redacted.
        rows = conn.execute(
            text(
                "SELECT source, event_id, payload FROM payment.webhook_events "
                "WHERE payload::text LIKE '%' || :s || '%'"
            ),
            {"s": account.stripe_customer_id},
        ).all()
        for row in rows:
            conn.execute(
                text(
                    "UPDATE payment.webhook_events SET payload = :p "
                    "WHERE source = :s AND event_id = :e"
                ).bindparams(bindparam("p", type_=JSONB)),
                {"p": redacted(row.payload), "s": row.source, "e": row.event_id},
            )
    return True
