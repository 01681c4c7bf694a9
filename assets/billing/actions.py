"""Telling the subscription service what a billing outcome means for a subscription (renew,
reactivate, mark past due, expire): each call is stored with the outcome and retried by every
later run until the service confirms it; those endpoints are idempotent."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import Engine, text

from assets.billing.outcomes import Counts
from paywall.service_client import ServiceClient, ServiceError


class SubscriptionActions:
    def __init__(self, engine: Engine, subscriptions: ServiceClient) -> None:
        self.engine = engine
        self.subscriptions = subscriptions

    def apply_pending(self, day: date, counts: Counts) -> None:
        with self.engine.connect() as conn:
            owed = list(
                conn.execute(
                    text(
                        "SELECT * FROM billing.invoices WHERE pending_action IS NOT NULL "
                        "AND kind <> 'proration' AND billing_date <= :d "
                        "ORDER BY billing_date, id"
                    ),
                    {"d": day},
                ).mappings()
            )
        for invoice in owed:
            action = invoice["pending_action"]
            sub_id = invoice["subscription_id"]
            if action in ("renew", "reactivate"):
                body = {
                    "invoice_id": str(invoice["id"]),
                    "payment_id": invoice["payment_id"],
                    "plan_id": invoice["plan_id"],
                    "period_start": invoice["period_start"].isoformat(),
                    "period_end": invoice["period_end"].isoformat(),
                }
                done = self._call(f"/v1/subscriptions/{sub_id}/{action}", body, counts)
                counts.renewed += int(done == 200)
            elif action == "mark_past_due":
                body = {"invoice_id": str(invoice["id"]), "decline_code": invoice["decline_code"]}
                done = self._call(f"/v1/subscriptions/{sub_id}/mark-past-due", body, counts)
                counts.past_due += int(done == 200)
            else:
                at = datetime.combine(day, time.min, UTC)
                done = self.expire(str(sub_id), at, "dunning_exhausted", counts)
            if done in (200, 409):  # 409: the subscription moved on (its customer acted)
                with self.engine.begin() as conn:
                    conn.execute(
                        text(
                            "UPDATE billing.invoices SET pending_action = NULL, updated_at = now() "
                            "WHERE id = :i AND pending_action = :a"
                        ),
                        {"i": invoice["id"], "a": action},
                    )

    def expire(self, sub_id: str, at: datetime, reason: str, counts: Counts) -> int | None:
        body = {"at": at.isoformat(), "reason": reason}
        done = self._call(f"/v1/subscriptions/{sub_id}/expire", body, counts)
        counts.canceled += int(done == 200)
        return done

    def _call(self, path: str, body: dict[str, Any], counts: Counts) -> int | None:
        try:
            status, answer = self.subscriptions.call("POST", path, json=body)
        except ServiceError as exc:
            status, answer = exc.status, exc.body
        if status == 409:
            counts.conflicts += 1
            counts.problems.append(f"{path}: {answer.get('detail')}")
        elif status != 200:
            counts.errors += 1
            counts.problems.append(f"{path}: {status} {answer.get('detail')}")
            return None
        return status
