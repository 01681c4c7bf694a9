"""Money that must not be left half-done or unnoticed: the recovery sweep and the daily
Stripe reconciliation, as assets an operator can see, schedule and re-run."""

from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Failure,
    MaterializeResult,
    MetadataValue,
    ResourceParam,
    asset,
)

from assets.shared import RETRIES, daily, day_of, markdown_table
from assets.shared.resources import Services

# Signups and payments untouched this long are abandoned: their request is over.
RECOVER_AFTER_SECONDS = 300


@asset(
    group_name="payments",
    kinds={"python"},
    description=(
        "Signups a crash or a vanished client left between steps are finished (or, when no "
        "money can have moved, their key is freed), and payments left pending are settled "
        "by asking Stripe, then upgrades charged but never applied are finished (their "
        "proration invoices settled and applied); through the services' internal recovery "
        "endpoints."
    ),
)
def payment_recovery(
    context: AssetExecutionContext, services: ResourceParam[Services]
) -> MaterializeResult:
    age = f"older_than_seconds={RECOVER_AFTER_SECONDS}"
    # Signups first: resuming one settles its own pending first charge.
    signups = services.registration.expect({200}, "POST", f"/v1/operations/signup-recovery?{age}")
    payments = services.payment.expect({200}, "POST", f"/v1/operations/payment-recovery?{age}")
    invoices = services.billing.expect({200}, "POST", f"/v1/operations/invoice-recovery?{age}")
    # Credit notes whose refund outcome was unknown, and prorated cancellations to confirm.
    credit_notes: dict[str, Any] = invoices.pop("credit_notes", None) or {}
    metadata: dict[str, Any] = {
        **{f"signups_{k}": v for k, v in signups.items()},
        **{f"payments_{k}": v for k, v in payments.items()},
        **{f"invoices_{k}": v for k, v in invoices.items()},
        **{f"credit_notes_{k}": v for k, v in credit_notes.items()},
    }
    left = signups["unfinished"] + payments["unavailable"] + invoices["errors"]
    left += int(credit_notes.get("errors", 0))
    if left:
        # Fail, so the failure alert reaches an operator; the next run tries them again.
        raise Failure(f"{left} signup(s) or payment(s) could not be recovered", metadata=metadata)
    context.log.info(f"recovery: {metadata}")
    return MaterializeResult(metadata=metadata)


@asset(
    partitions_def=daily,
    group_name="payments",
    kinds={"stripe", "postgres"},
    retry_policy=RETRIES,
    check_specs=[
        AssetCheckSpec(
            "stripe_matches_payments",
            asset="stripe_reconciliation",
            description="Every charge at Stripe that day is recorded, and nothing else is.",
        )
    ],
    description=(
        "Stripe's PaymentIntents of the partition's day against the payment service's "
        "payments, per currency, with every mismatch listed."
    ),
)
def stripe_reconciliation(
    context: AssetExecutionContext, services: ResourceParam[Services]
) -> MaterializeResult:
    day = day_of(context.partition_key)
    report = services.payment.expect(
        {200}, "GET", f"/v1/operations/reconciliation?date={day.isoformat()}"
    )
    mismatches = report["mismatches"]
    metadata: dict[str, Any] = {
        "day": day.isoformat(),
        "mismatches": len(mismatches),
        "totals": MetadataValue.md(_totals_table(report["totals"])),
    }
    if mismatches:
        metadata["mismatched"] = MetadataValue.md(_mismatch_table(mismatches))
    return MaterializeResult(
        metadata=metadata,
        check_results=[
            AssetCheckResult(
                check_name="stripe_matches_payments",
                passed=bool(report["matched"]),
                severity=AssetCheckSeverity.ERROR,
                metadata={"mismatches": len(mismatches)},
            )
        ],
    )


def _totals_table(totals: list[dict[str, Any]]) -> str:
    if not totals:
        return "no charges"
    return markdown_table(
        ["currency", "Stripe charges", "Stripe amount", "recorded", "recorded amount"],
        [
            [
                t["currency"],
                t["stripe_count"],
                t["stripe_amount"],
                t["recorded_count"],
                t["recorded_amount"],
            ]
            for t in totals
        ],
    )


def _mismatch_table(mismatches: list[dict[str, Any]], limit: int = 50) -> str:
    table = markdown_table(
        ["problem", "PaymentIntent", "payment", "amount", "at Stripe", "recorded"],
        [
            [
                m["problem"],
                m["payment_intent_id"],
                m["payment_id"],
                f"{m['amount']} {m['currency']}",
                m["stripe_status"],
                m["recorded_status"],
            ]
            for m in mismatches[:limit]
        ],
    )
    more = len(mismatches) - limit
    return table + (f"\n\n… and {more} more" if more > 0 else "")
