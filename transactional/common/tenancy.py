"""Whose data a caller may touch: the one rule every service applies.

- An internal service (scope `internal`) may act for any customer of any tenant.
- A user token (it carries `customer_id`) may act only for its own customer.
- A partner token (it carries `tenant_id`) may act only for its tenant's customers.
- Any other caller is bound to nothing and gets no tenant data at all (403): such a
  client would otherwise share one unnamed "tenant" with every other unbound client.

"Not yours" answers exactly as "absent" does (404, the same body), so an id from
another tenant reveals nothing, not even that it exists.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Depends

from transactional.common import errors
from transactional.common.errors import DomainError, not_found
from transactional.common.security import Principal, require, require_any

__all__ = ["bound", "member", "member_any", "not_found", "owns", "tenant_for"]


def bound(principal: Principal) -> Principal:
    """The principal, if it is internal or bound to a customer or a tenant; else 403."""
    if principal.internal or principal.customer_id or principal.tenant_id:
        return principal
    raise DomainError(
        errors.TENANT_REQUIRED,
        "this client belongs to no tenant and no customer, so it may not reach customer "
        "data; use a client registered for a tenant",
    )


def member(*scopes: str) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """A FastAPI dependency for tenant data: `require(*scopes)`, then `bound`.

    `bound` never blocks, so it runs on the event loop (async) rather than costing each
    request one more threadpool hand-off; `require` stays sync (it may fetch the JWKS).
    """
    scoped = require(*scopes)

    async def dependency(principal: Principal = Depends(scoped)) -> Principal:
        return bound(principal)

    return dependency


def member_any(*scopes: str) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """`member`, satisfied by any one of `scopes` (security.require_any)."""
    scoped = require_any(*scopes)

    async def dependency(principal: Principal = Depends(scoped)) -> Principal:
        return bound(principal)

    return dependency


def owns(principal: Principal, customer_id: uuid.UUID | str, tenant_id: str | None) -> bool:
    """True when `principal` may act for the customer `customer_id` of tenant `tenant_id`."""
    if principal.internal:
        return True
    if principal.customer_id:
        return principal.customer_id == str(customer_id)
    # An empty tenant is no tenant: it must never match the customers that have none.
    return bool(principal.tenant_id) and principal.tenant_id == tenant_id


def list_scope(principal: Principal) -> dict[str, str | None]:
    """The column a list is filtered on for the caller: {} for an internal caller (every
    tenant), a user's own customer, else the partner's tenant (None, no tenant, matches no
    row: SQL's `= NULL` is never true)."""
    if principal.internal:
        return {}
    if principal.customer_id:
        return {"customer_id": principal.customer_id}
    return {"tenant_id": principal.tenant_id or None}


def tenant_for(principal: Principal, claimed: str | None = None) -> str | None:
    """The tenant a request acts in: the one an internal caller names (None: no tenant),
    else the caller's own. Naming another tenant is for internal services only (403)."""
    if principal.internal:
        return claimed
    own = principal.tenant_id or None
    if claimed is not None and claimed != own:
        raise DomainError(
            errors.FORBIDDEN_TENANT, "tenant_id names another tenant; only internal services may"
        )
    return own
