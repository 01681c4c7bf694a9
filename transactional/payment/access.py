"""Who may touch which customer's money."""

from __future__ import annotations

from transactional.common.problems import Problem
from transactional.common.security import Principal, require

# Module-level so tests can swap them with app.dependency_overrides.
WRITE = require("payments:write")
READ = require("payments:read")
OPERATOR = require("operations", "internal")


def authorize(principal: Principal, customer_id: str, account_tenant: str | None) -> None:
    """Internal services may act for anyone; others only for themselves or their tenant."""
    if principal.internal or principal.customer_id == customer_id:
        return
    if principal.tenant_id is not None and principal.tenant_id == account_tenant:
        return
    raise Problem(
        403,
        "Forbidden",
        "this customer is not yours",
        type_="https://paywall.dev/problems/forbidden-customer",
    )
