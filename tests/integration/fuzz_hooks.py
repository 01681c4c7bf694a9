"""Schemathesis hooks for test_fuzz_api.py: the few answers an OpenAPI document cannot foresee.

`st run` loads this module (SCHEMATHESIS_HOOKS). Each rule below excuses one documented
answer to one kind of schema-valid request, matched on the problem the API answered, so
any other failure of the same operation still fails the run. The summary counts what was
dropped ("N failures dropped by filter_failure").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import schemathesis

from transactional.common import errors

Rule = Callable[[str, dict[str, Any], Any], bool]


def _problem(response: Any) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _refers_to_nothing(_: str, problem: dict[str, Any], __: Any) -> bool:
    """A plan or a Stripe PaymentMethod named in the body that does not exist: 422.

    A schema says what an id looks like, not which ids exist.
    """
    return problem.get("type") in {errors.UNKNOWN_PLAN.uri, errors.PROCESSOR_REJECTED.uri}


def _depends_on_state(_: str, problem: dict[str, Any], __: Any) -> bool:
    """Well-formed, refused for the state it meets (422): an Idempotency-Key reused with
    another body (as Stripe answers), a charge for an account with no card yet, a plan
    change to another currency or billing interval than the subscription's.
    """
    return problem.get("type") in {
        errors.IDEMPOTENCY_KEY_REUSED.uri,
        errors.NO_PAYMENT_METHOD.uri,
        errors.INCOMPATIBLE_PLAN.uri,
    }


def _nul_in_text(_: str, problem: dict[str, Any], __: Any) -> bool:
    """A NUL character in a string: PostgreSQL text cannot hold one, so 422 (400 with an
    RFC 6749 invalid_request from the OAuth forms, which refuse it before anything runs)."""
    said = f"{problem.get('detail', '')} {problem.get('error_description', '')}"
    return any(
        sign in said
        for sign in (
            "NUL (0x00)",  # text columns
            "unsupported Unicode escape sequence",  # jsonb (a signup's kept request)
            "must not contain NUL characters",
        )
    )


def _undeliverable_email(_: str, problem: dict[str, Any], __: Any) -> bool:
    """An email JSON Schema's `format: email` allows but no mail reaches (`a@b.test`): 422,
    in any field that holds one (`email`, a webhook endpoint's `contact_email`)."""
    return any(
        str((error.get("loc") or [""])[-1]).endswith("email")  # email, contact_email
        and str(error.get("msg", "")).startswith("value is not a valid email address")
        for error in problem.get("errors", [])
    )


def _whole_float_integer(_: str, problem: dict[str, Any], body: Any) -> bool:
    """`"amount": 450.0`, `"trial_days": 78.0`: JSON Schema's integer includes them; the API,
    like Stripe's, takes integer literals only, so a unit mistake (20.0 meant as dollars)
    cannot become a charge. Excused only where every refusal is such a float.
    """
    refused = problem.get("errors") or []
    return bool(refused) and all(
        error.get("type") == "int_type" and isinstance(_at(body, error.get("loc")), float)
        for error in refused
    )


def _at(body: Any, loc: Any) -> Any:
    """The value a validation error's `loc` (["body", key or index, ...]) points at."""
    if not isinstance(loc, list) or loc[:1] != ["body"]:
        return None
    value = body
    for step in loc[1:]:
        try:
            value = value[step]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def _opaque_token(label: str, problem: dict[str, Any], __: Any) -> bool:
    """A cursor this API did not hand out (any list), or a Stripe signature that does not
    verify: 400."""
    kind = problem.get("type")
    return (label.startswith("GET ") and kind == errors.BAD_CURSOR.uri) or (
        label,
        kind,
    ) == ("POST /webhooks/stripe", errors.INVALID_WEBHOOK.uri)


def _coupon_terms_together(label: str, problem: dict[str, Any], __: Any) -> bool:
    """A coupon's terms go together (one of percent_off and amount_off, a currency with an
    amount, periods with `repeating`): its model says so, a JSON Schema of its fields not."""
    return label == "POST /v1/coupons" and any(
        error.get("loc") == ["body"] and error.get("type") == "value_error"
        for error in problem.get("errors", [])
    )


def _oauth_refers_to_nothing(label: str, problem: dict[str, Any], __: Any) -> bool:
    """OAuth requests naming a client, code, token or redirect URI that does not exist.

    RFC 6749 answers them 400 (invalid_grant, unauthorized_client, invalid_scope) or, for
    the authorization endpoint, a page that does not redirect; a schema can say what an
    authorization code looks like, not which codes were issued.
    """
    if problem.get("error") in {"invalid_grant", "unauthorized_client", "invalid_scope"}:
        return True
    return label.endswith(" /oauth/authorize") and problem.get("detail") in {
        "unknown client",
        "redirect_uri is not registered for this client",
    }


RULES: dict[str, list[Rule]] = {
    "RejectedPositiveData": [
        _refers_to_nothing,
        _oauth_refers_to_nothing,
        _depends_on_state,
        _nul_in_text,
        _undeliverable_email,
        _whole_float_integer,
        _opaque_token,
        _coupon_terms_together,
    ],
}


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """Keep every failure no rule excuses."""
    rules = RULES.get(type(failure).__name__, [])
    label = case.operation.label
    problem = _problem(response)
    return not any(rule(label, problem, case.body) for rule in rules)
