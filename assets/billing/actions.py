"""Telling the subscription service what a billing outcome means for a subscription (renew,
reactivate, mark past due, expire): each call is stored with the outcome and retried by every
later run until the service confirms it; those endpoints are idempotent.

The calls run concurrently across subscriptions (one call waits mostly on the network and the
subscription service's database), while one subscription's calls keep their billing-date
order: a renewal must not overtake the past-due mark of an earlier day. A subscription whose
only pending action is its renewal (nearly every one, on a billing day) is renewed in a batch
of `RENEWAL_BATCH` (`POST /v1/subscription-renewals`): the service applies each as its own
call would, so a batch answer lost is resent whole and changes nothing twice.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import Engine, RowMapping, text

from assets.billing.outcomes import Counts
from paywall.service_client import ServiceClient, ServiceError
from paywall.shards import Shard

ADVANCES = ("renew", "reactivate")
# A request's worth: the per-call cost (token check, routing, a round trip) shared by 100.
RENEWAL_BATCH = 100
RENEWALS = "/v1/subscription-renewals"


class SubscriptionActions:
    def __init__(self, engine: Engine, subscriptions: ServiceClient, concurrency: int = 8) -> None:
        self.engine = engine
        self.subscriptions = subscriptions
        self.concurrency = concurrency
        self._counting = threading.Lock()

    def apply_pending(self, day: date, shard: Shard, counts: Counts) -> None:
        with self.engine.connect() as conn:
            owed = list(
                conn.execute(
                    text(
                        "SELECT * FROM billing.invoices WHERE pending_action IS NOT NULL "
                        "AND kind <> 'proration' AND billing_date <= :d "
                        f"AND {shard.where('subscription_id')} ORDER BY billing_date, id"
                    ),
                    {"d": day, **shard.params()},
                ).mappings()
            )
        by_subscription: dict[uuid.UUID, list[RowMapping]] = {}
        for invoice in owed:
            by_subscription.setdefault(invoice["subscription_id"], []).append(invoice)

        def in_order(invoices: list[RowMapping]) -> None:
            for invoice in invoices:
                self._apply(invoice, day, counts)

        def renewal_only(invoices: list[RowMapping]) -> bool:
            return len(invoices) == 1 and invoices[0]["pending_action"] in ADVANCES

        renewals = [i[0] for i in by_subscription.values() if renewal_only(i)]
        batches = [renewals[n : n + RENEWAL_BATCH] for n in range(0, len(renewals), RENEWAL_BATCH)]
        self._each(lambda batch: self._advance_many(batch, day, counts), batches)
        self._each(in_order, [i for i in by_subscription.values() if not renewal_only(i)])

    def expire_all(self, expiring: list[tuple[str, datetime]], reason: str, counts: Counts) -> None:
        self._each(lambda item: self.expire(item[0], item[1], reason, counts), expiring)

    def expire(self, sub_id: str, at: datetime, reason: str, counts: Counts) -> int | None:
        body = {"at": at.isoformat(), "reason": reason}
        done = self._call(f"/v1/subscriptions/{sub_id}/expire", body, counts)
        self._count(counts, "canceled", done == 200)
        return done

    def _each(self, work: Any, items: Iterable[Any]) -> None:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            list(pool.map(work, items))  # list(): a worker's exception is raised here

    def _apply(self, invoice: RowMapping, day: date, counts: Counts) -> None:
        action = invoice["pending_action"]
        sub_id = invoice["subscription_id"]
        if action in ADVANCES:
            done = self._call(f"/v1/subscriptions/{sub_id}/{action}", _period(invoice), counts)
            self._count(counts, "renewed", done == 200)
        elif action == "mark_past_due":
            body = {"invoice_id": str(invoice["id"]), "decline_code": invoice["decline_code"]}
            done = self._call(f"/v1/subscriptions/{sub_id}/mark-past-due", body, counts)
            self._count(counts, "past_due", done == 200)
        else:
            at = datetime.combine(day, time.min, UTC)
            done = self.expire(str(sub_id), at, "dunning_exhausted", counts)
        if done in (200, 409):  # 409: the subscription moved on (its customer acted)
            self._settled([invoice])

    def _advance_many(self, invoices: list[RowMapping], day: date, counts: Counts) -> None:
        body = {
            "renewals": [
                {
                    "subscription_id": str(i["subscription_id"]),
                    "action": i["pending_action"],
                    **_period(i),
                }
                for i in invoices
            ]
        }
        try:
            status, answer = self.subscriptions.call("POST", RENEWALS, json=body)
        except ServiceError as exc:
            status, answer = exc.status, exc.body
        if status == 404:
            # A subscription service older than batches (mid-deploy): one call each.
            for invoice in invoices:
                self._apply(invoice, day, counts)
            return
        if status != 200:  # none is known applied: the next run sends them again
            refused = f"{len(invoices)} renewals: {status} {answer.get('detail')}"
            self._count(counts, "errors", len(invoices), refused)
            return
        settled = []
        for invoice, outcome in zip(invoices, answer["results"], strict=True):
            path = f"/v1/subscriptions/{invoice['subscription_id']}/{invoice['pending_action']}"
            detail = str((outcome.get("problem") or {}).get("detail"))
            if outcome["status"] == 409:
                self._count(counts, "conflicts", True, f"{path}: {detail}")
            elif outcome["status"] != 200:
                self._count(counts, "errors", True, f"{path}: {outcome['status']} {detail}")
                continue
            self._count(counts, "renewed", outcome["status"] == 200)
            settled.append(invoice)
        self._settled(settled)

    def _settled(self, invoices: list[RowMapping]) -> None:
        """The subscription service has these invoices' actions: no run sends them again."""
        if not invoices:
            return
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE billing.invoices SET pending_action = NULL, updated_at = now() "
                    "WHERE id = :i AND pending_action = :a"
                ),
                [{"i": i["id"], "a": i["pending_action"]} for i in invoices],
            )

    def _count(self, counts: Counts, name: str, happened: bool | int, problem: str = "") -> None:
        """Add `happened` (True: one) to the count `name`, and `problem` to the run's list."""
        with self._counting:
            setattr(counts, name, getattr(counts, name) + int(happened))
            if problem:
                counts.problems.append(problem)

    def _call(self, path: str, body: dict[str, Any], counts: Counts) -> int | None:
        try:
            status, answer = self.subscriptions.call("POST", path, json=body)
        except ServiceError as exc:
            status, answer = exc.status, exc.body
        if status == 409:
            self._count(counts, "conflicts", True, f"{path}: {answer.get('detail')}")
        elif status != 200:
            self._count(counts, "errors", True, f"{path}: {status} {answer.get('detail')}")
            return None
        return status


def _period(invoice: RowMapping) -> dict[str, str]:
    """What a renewal or reactivation asks of the subscription service for `invoice`."""
    return {
        "invoice_id": str(invoice["id"]),
        # A voided invoice's period is given, not paid for: its id stands in.
        "payment_id": invoice["payment_id"] or f"void:{invoice['id']}",
        "plan_id": invoice["plan_id"],
        "period_start": invoice["period_start"].isoformat(),
        "period_end": invoice["period_end"].isoformat(),
    }
