"""The one tenancy rule, case by case (the HTTP walk is in tests/faults/test_tenancy.py)."""

from __future__ import annotations

import pytest

from transactional.common import errors, tenancy
from transactional.common.errors import DomainError
from transactional.common.security import Principal


def principal(
    *, customer: str | None = None, tenant: str | None = None, internal: bool = False
) -> Principal:
    scopes = frozenset({"internal"} if internal else set())
    return Principal("sub", "client", scopes, customer, tenant)


@pytest.mark.parametrize(
    ("who", "customer", "tenant", "owns"),
    [
        (principal(internal=True), "c1", "t1", True),
        (principal(internal=True), "c1", None, True),
        (principal(customer="c1", tenant="t1"), "c1", "t1", True),
        (principal(customer="c1", tenant="t1"), "c2", "t1", False),  # a user: its own only
        (principal(tenant="t1"), "c1", "t1", True),
        (principal(tenant="t1"), "c1", "t2", False),
        (principal(tenant="t1"), "c1", None, False),
        (principal(), "c1", None, False),  # unbound: never the tenant-less customers
        (principal(tenant=""), "c1", None, False),
        (principal(tenant=""), "c1", "", False),  # an empty tenant is no tenant
    ],
)
def test_owns(who: Principal, customer: str, tenant: str | None, owns: bool) -> None:
    assert tenancy.owns(who, customer, tenant) is owns


def test_a_client_bound_to_nothing_is_refused() -> None:
    for bound in (principal(internal=True), principal(customer="c1"), principal(tenant="t1")):
        assert tenancy.bound(bound) is bound
    for unbound in (principal(), principal(tenant="")):
        with pytest.raises(DomainError) as refused:
            tenancy.bound(unbound)
        assert (refused.value.problem, refused.value.problem.status) == (
            errors.TENANT_REQUIRED,
            403,
        )


def test_only_internal_callers_name_another_tenant() -> None:
    assert tenancy.tenant_for(principal(internal=True), "t2") == "t2"
    assert tenancy.tenant_for(principal(internal=True)) is None
    assert tenancy.tenant_for(principal(tenant="t1")) == "t1"
    assert tenancy.tenant_for(principal(tenant="t1"), "t1") == "t1"
    with pytest.raises(DomainError) as refused:
        tenancy.tenant_for(principal(tenant="t1"), "t2")
    assert (refused.value.problem, refused.value.problem.status) == (errors.FORBIDDEN_TENANT, 403)


def test_absent_and_not_yours_are_one_answer() -> None:
    problem = tenancy.not_found("payment account", "c1")
    assert problem.problem.status == 404
    assert problem.body("/x") == {
        "type": "https://paywall.dev/problems/not-found",
        "title": "Not Found",
        "status": 404,
        "detail": "no payment account c1",
        "instance": "/x",
    }
