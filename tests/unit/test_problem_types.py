"""The problem-type registry: one URI per kind of error, and the kernel agrees with it."""

from __future__ import annotations

from paywall import service_client
from transactional.common import errors


def test_every_type_is_registered_once_under_its_own_slug() -> None:
    assert all(slug == kind.slug for slug, kind in errors.REGISTRY.items())
    assert len({kind.uri for kind in errors.REGISTRY.values()}) == len(errors.REGISTRY)
    assert all(kind.uri.startswith(errors.BASE) for kind in errors.REGISTRY.values())
    assert all(400 <= kind.status < 600 for kind in errors.REGISTRY.values())


def test_the_service_client_waits_on_the_services_in_progress_answer() -> None:
    # The kernel cannot import the registry (it sits below the services): same URI by test.
    assert errors.IDEMPOTENCY_IN_PROGRESS.uri == service_client.IN_PROGRESS_TYPE


def test_a_domain_error_renders_its_type_and_leaves_out_empty_members() -> None:
    error = errors.DomainError(errors.NOT_FOUND, "no payment p1", payment_id=None, extra=1)
    assert error.body("/v1/payments/p1") == {
        "type": "https://paywall.dev/problems/not-found",
        "title": "Not Found",
        "status": 404,
        "detail": "no payment p1",
        "instance": "/v1/payments/p1",
        "extra": 1,
    }
