"""Cancel, and with `prorate` (a cancellation now) the unused time of the paid period
refunded: billing issues the credit note while this holds the subscription's row, and the
cancellation commits only once billing has answered. A refund whose outcome is not known
yet fails the cancel (503) with nothing changed; asked again, billing finds the note it
made for the subscription and period (its own key) and never refunds twice."""

from __future__ import annotations

import uuid

from sqlalchemy import Connection

from transactional.common.security import Principal
from transactional.subscription import repository, service
from transactional.subscription.billing import Billing
from transactional.subscription.models import Cancel, Subscription


def cancel(
    conn: Connection, billing: Billing, principal: Principal, sub_id: uuid.UUID, body: Cancel
) -> Subscription:
    before = repository.get(conn, sub_id, lock=True)
    canceled = service.cancel(conn, principal, sub_id, body.at_period_end)
    # Only a period the customer paid for: trials and unpaid (past due) periods have none.
    now = body.prorate and not body.at_period_end
    if now and before is not None and before.status == "active":
        assert canceled.canceled_at is not None
        billing.credit_cancellation(before, canceled.canceled_at)
    return canceled
