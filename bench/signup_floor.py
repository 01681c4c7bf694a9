"""The floor for bench/signup.py: only the work no implementation of a signup can skip.

Per signup, in sequence: the argon2id hash of the password, the Stripe calls of a first
charge (customer, attach, default method, PaymentIntent confirm), and one INSERT per row
the saga wrote in the same run, committed once per owning schema (each service commits
its own rows). Counting the saga's rows in the run keeps the floor honest as the saga
changes: a row the saga stops writing leaves the floor too.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter

import psycopg
import stripe

from transactional.auth.passwords import hash_secret

FLOOR_TABLE = "public.bench_floor_rows"
# A row the size of a typical outbox envelope, so the INSERTs carry what the saga's do.
_PAYLOAD = json.dumps({"email": "bench@example.com", "name": "Bench", "pad": "x" * 300})


def table_rows(url: str) -> Counter[str]:
    """Rows per user table ("schema.table"), counted exactly."""
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "SELECT schemaname, relname FROM pg_stat_user_tables WHERE relname <> %s",
            ("bench_floor_rows",),
        ).fetchall()
        return Counter(
            {
                f"{schema}.{table}": conn.execute(
                    f'SELECT count(*) FROM "{schema}"."{table}"'
                ).fetchone()[0]  # type: ignore[index]
                for schema, table in tables
            }
        )


def rows_per_schema(before: Counter[str], after: Counter[str], signups: int) -> dict[str, int]:
    """Rows one signup wrote, per schema, rounded to whole rows."""
    per_schema: Counter[str] = Counter()
    for table, count in (after - before).items():
        per_schema[table.split(".", 1)[0]] += count
    return {schema: round(n / signups) for schema, n in sorted(per_schema.items()) if n}


def create_floor_table(url: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {FLOOR_TABLE} (id uuid PRIMARY KEY, "
            "owner text NOT NULL, body jsonb NOT NULL, "
            "created_at timestamptz NOT NULL DEFAULT now())"
        )


def stripe_first_charge(client: stripe.StripeClient, card: str) -> None:
    """What the payment service asks Stripe for in a signup with a first charge."""
    customer = client.v1.customers.create(params={"email": "bench@example.com"})
    client.v1.payment_methods.attach(card, params={"customer": customer.id})
    client.v1.customers.update(
        customer.id, params={"invoice_settings": {"default_payment_method": card}}
    )
    intent = client.v1.payment_intents.create(
        params={
            "amount": 1900,
            "currency": "usd",
            "customer": customer.id,
            "payment_method": card,
            "payment_method_types": ["card"],
            "confirm": True,
            "off_session": True,
        }
    )
    if intent.status != "succeeded":
        raise RuntimeError(f"bench charge {intent.id} is {intent.status}")


def insert_rows(conn: psycopg.Connection, rows: dict[str, int]) -> None:
    """The saga's rows for one signup: one transaction per owning schema."""
    for schema, count in rows.items():
        with conn.transaction():
            for _ in range(count):
                conn.execute(
                    f"INSERT INTO {FLOOR_TABLE} (id, owner, body) VALUES (%s, %s, %s)",
                    (uuid.uuid4(), schema, _PAYLOAD),
                )


def floor_signup(
    conn: psycopg.Connection, client: stripe.StripeClient, card: str, rows: dict[str, int]
) -> None:
    """One signup's unavoidable work, in sequence, on the caller's own connection."""
    hash_secret("bench password 123")
    stripe_first_charge(client, card)
    insert_rows(conn, rows)
