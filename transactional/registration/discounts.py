"""A signup's coupon and its first charge's price, asked of billing (which owns coupons,
discounts and tax rates) with registration's own client.

The coupon is checked before anything is made (an unknown, expired, archived or used-up
one is the client's 422 with nothing created or charged), redeemed once the subscription
exists (under a key of the signup's, so a resumed signup redeems once), and the first
period priced by billing with its discount and tax.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

from paywall.service_client import ServiceClient
from transactional.common import errors
from transactional.registration.refusals import Rejected, check


def _refused(detail: str) -> Rejected:
    return Rejected(422, {"type": errors.COUPON_NOT_REDEEMABLE.uri, "detail": detail})


def check_coupon(billing: ServiceClient, code: str, tenant: str | None) -> None:
    query = {"code": code, "limit": 100}
    page = billing.expect({200}, "GET", f"/v1/coupons?{urlencode(query)}")
    found = [c for c in page["data"] if c["tenant_id"] == tenant]
    if not found:
        raise _refused(f"no coupon {code!r}")
    if not found[0]["redeemable"]:
        raise _refused(f"coupon {code!r} is expired, archived or used up")


def redeem(billing: ServiceClient, registration_id: uuid.UUID, sub_id: str, code: str) -> None:
    status, body = billing.call(
        "POST",
        "/v1/discounts",
        idempotency_key=f"registration:{registration_id}:discount",
        json={"subscription_id": sub_id, "coupon": code},
    )
    if status == 409 and str(body.get("type", "")).endswith("/already-exists"):
        return  # redeemed by an earlier attempt of this signup
    check("billing", status, body, {200, 201})


def first_charge(
    billing: ServiceClient, sub: dict[str, Any], price: dict[str, Any], tenant: str | None
) -> int:
    """The first period's total with its discount and tax, in minor units."""
    quote = billing.expect(
        {200},
        "POST",
        "/v1/quotes",
        json={
            "subscription_id": sub["id"],
            "customer_id": str(sub["customer_id"]),
            "tenant_id": tenant,
            "plan_id": price["id"],
            "amount": price["amount"],
            "currency": price["currency"],
            "period_start": sub["current_period_start"],
            "period_end": sub["current_period_end"],
        },
    )
    return int(quote["total"])
