"""How big payment Idempotency-Keys grow: bytes per million payments, measured.

Payment keys are never purged (a key is the payment's identity; forgetting it would let a
late retry charge twice), so this is their cost. It fills `payment.payments` of a fresh
local Postgres with N payments shaped as the service writes them (a partner's key in its
owner's namespace, `tenant-…|<uuid>`; the request fingerprint, a SHA-256 hex; the saved
first answer, replayed on retries) and measures what the key machinery takes: the key and
fingerprint columns, the key's unique index, the saved answers. Measurement, not timing.

    .venv/bin/python bench/payment_keys.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import text  # noqa: E402

from bench.fresh_stack import fresh_stack  # noqa: E402
from paywall import db  # noqa: E402
from paywall.settings import reset_settings  # noqa: E402
from paywall.stack.postgres import Postgres  # noqa: E402

FILL = """
INSERT INTO payment.payments (id, customer_id, idempotency_key, request_fingerprint, amount,
    currency, status, stripe_payment_intent_id, response_status, response_body)
SELECT id, 'cus-bench', 'tenant-' || substr(md5(n::text), 1, 8) || '|' || gen_random_uuid(),
    encode(sha256(n::text::bytea), 'hex'), 1999, 'usd', 'succeeded', 'pi_' || md5(id::text),
    201, jsonb_build_object('id', id, 'customer_id', 'cus-bench', 'amount', 1999,
        'currency', 'usd', 'status', 'succeeded', 'amount_refunded', 0, 'description', null,
        'metadata', '{}'::jsonb, 'failure_code', null, 'decline_code', null,
        'stripe_payment_intent_id', 'pi_' || md5(id::text), 'created_at', now())
FROM (SELECT n, gen_random_uuid() AS id FROM generate_series(1, :n) AS n) AS s
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    rows = parser.parse_args().rows
    with fresh_stack("paywall-bench-keys-", waves=[[Postgres()]]) as (_, settings):
        reset_settings()
        db.upgrade(settings)
        engine = db.engine(settings)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO payment.accounts (customer_id, stripe_customer_id) "
                    "VALUES ('cus-bench', 'cus_bench')"
                )
            )
            conn.execute(text(FILL), {"n": rows})
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE payment.payments"))
            sizes = conn.execute(
                text(
                    "SELECT sum(pg_column_size(idempotency_key)) AS key, "
                    "sum(pg_column_size(request_fingerprint)) AS fingerprint, "
                    "sum(pg_column_size(response_body)) AS answer, "
                    "pg_relation_size('payment.payments_idempotency_key_key') AS index, "
                    "pg_total_relation_size('payment.payments') AS whole "
                    "FROM payment.payments"
                )
            ).one()
    per_million = 1_000_000 / rows
    mb = {k: v * per_million / 1e6 for k, v in sizes._mapping.items()}
    keys = mb["key"] + mb["fingerprint"] + mb["index"]
    print(f"payments: {rows:,}; per million payments, MB:")
    for name in ("key", "fingerprint", "index", "answer", "whole"):
        print(f"  {name:<12} {mb[name]:8.1f}")
    print(
        f"  key + fingerprint + unique index: {keys:.1f} MB; with saved answers: "
        f"{keys + mb['answer']:.1f} MB; the whole payments table: {mb['whole']:.1f} MB"
    )


if __name__ == "__main__":
    main()
