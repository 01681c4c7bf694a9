"""Every problem type the API answers, and the domain error that carries one.

Service code raises `DomainError(NOT_FOUND, "no customer …")`; one handler
(`problems.install`) answers it as RFC 9457 problem+json with the type's URI, title and
status. The registry is the whole list: a client can rely on these type URIs, and a new
kind of error is added here, once, not spelled out where it is raised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

BASE = "https://paywall.dev/problems/"


@dataclass(frozen=True)
class ProblemType:
    slug: str
    status: int
    title: str

    @property
    def uri(self) -> str:
        return BASE + self.slug


REGISTRY: dict[str, ProblemType] = {}


def _register(slug: str, status: int, title: str) -> ProblemType:
    assert slug not in REGISTRY, f"problem type {slug} registered twice"
    REGISTRY[slug] = ProblemType(slug, status, title)
    return REGISTRY[slug]


# -- the request itself ------------------------------------------------------------------
VALIDATION = _register("validation", 422, "Validation Failed")
INVALID_HEADER = _register("invalid-header", 400, "Invalid Header")
MALFORMED_BODY = _register("malformed-body", 400, "Malformed Body")
IDEMPOTENCY_KEY_REQUIRED = _register("idempotency-key-required", 400, "Idempotency-Key Required")
IDEMPOTENCY_KEY_REUSED = _register("idempotency-key-reused", 422, "Idempotency Key Reused")
IDEMPOTENCY_IN_PROGRESS = _register("idempotency-in-progress", 409, "Request In Progress")
BAD_CURSOR = _register("bad-cursor", 400, "Bad Cursor")
# The OAuth authorization endpoint shows these to the user: with no client and redirect URI
# it can trust, it has nowhere safe to send an RFC 6749 error.
INVALID_AUTHORIZATION_REQUEST = _register(
    "invalid-authorization-request", 400, "Invalid Authorization Request"
)
HEADERS_TOO_LARGE = _register("headers-too-large", 431, "Request Header Fields Too Large")
ROUTE_NOT_FOUND = _register("no-such-route", 404, "Not Found")
METHOD_NOT_ALLOWED = _register("method-not-allowed", 405, "Method Not Allowed")
UNPROCESSABLE_VALUE = _register("unprocessable-value", 422, "Unprocessable Value")
# -- who is asking -----------------------------------------------------------------------
INVALID_TOKEN = _register("invalid-token", 401, "Unauthorized")
INSUFFICIENT_SCOPE = _register("insufficient-scope", 403, "Forbidden")
TENANT_REQUIRED = _register("tenant-required", 403, "Tenant Required")
FORBIDDEN_TENANT = _register("forbidden-tenant", 403, "Forbidden Tenant")
# -- the objects ---------------------------------------------------------------------------
NOT_FOUND = _register("not-found", 404, "Not Found")
ALREADY_EXISTS = _register("already-exists", 409, "Already Exists")
TRANSITION = _register("transition", 409, "Transition Not Allowed")
SAME_PLAN = _register("same-plan", 409, "Same Plan")
ALREADY_SUBSCRIBED = _register("already-subscribed", 409, "Already Subscribed")
UNKNOWN_PLAN = _register("unknown-plan", 422, "Unknown Plan")
INCOMPATIBLE_PLAN = _register("incompatible-plan", 422, "Incompatible Plan")
EMAIL_TAKEN = _register("email-taken", 409, "Email Taken")
USER_EXISTS = _register("user-exists", 409, "User Exists")
ALREADY_REGISTERED = _register("already-registered", 409, "Already Registered")
ALREADY_ERASED = _register("already-erased", 409, "Already Erased")
UNKNOWN_TENANT = _register("unknown-tenant", 422, "Unknown Tenant")
SCOPE_NOT_ALLOWED = _register("scope-not-allowed", 422, "Scope Not Allowed")
CLIENT_DISABLED = _register("client-disabled", 409, "Client Disabled")
# -- money ---------------------------------------------------------------------------------
PAYMENT_DECLINED = _register("payment-declined", 402, "Payment Declined")
NO_PAYMENT_METHOD = _register("no-payment-method", 422, "No Payment Method")
NOT_REFUNDABLE = _register("not-refundable", 422, "Not Refundable")
REFUND_EXCEEDS_PAYMENT = _register("refund-exceeds-payment", 422, "Refund Exceeds Payment")
REFUND_REJECTED = _register("refund-rejected", 422, "Refund Rejected")
PROCESSOR_REJECTED = _register("processor-rejected", 422, "Rejected by the Payment Processor")
PROCESSOR_UNAVAILABLE = _register("processor-unavailable", 503, "Payment Processor Unavailable")
COUPON_NOT_REDEEMABLE = _register("coupon-not-redeemable", 422, "Coupon Not Redeemable")
INVOICE_STATE = _register("invoice-state", 409, "Not Allowed in the Invoice's State")
CREDIT_EXCEEDS_INVOICE = _register("credit-exceeds-invoice", 422, "Credit Exceeds Invoice")
PRORATION_IN_PROGRESS = _register("proration-in-progress", 409, "Plan Change In Progress")
INVALID_WEBHOOK = _register("invalid-webhook", 400, "Invalid Webhook")
# -- passing trouble -------------------------------------------------------------------------
DEPENDENCY_UNAVAILABLE = _register("dependency-unavailable", 503, "Dependency Unavailable")
INTERNAL = _register("internal", 500, "Internal Server Error")
SIGNUP_UNFINISHED = _register("signup-unfinished", 503, "Signup Unfinished")
NOT_CONFIGURED = _register("not-configured", 503, "Not Configured")


# A required header that is missing gets its own type where clients look for it by name.
REQUIRED_HEADERS = {"Idempotency-Key": IDEMPOTENCY_KEY_REQUIRED}


class DomainError(Exception):
    """A refusal a client should see: its problem type, a detail, and any extra members."""

    def __init__(
        self,
        problem: ProblemType,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or problem.title)
        self.problem = problem
        self.detail = detail
        self.headers = headers
        self.extra = extra

    def body(self, instance: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.problem.uri,
            "title": self.problem.title,
            "status": self.problem.status,
        }
        if self.detail:
            out["detail"] = self.detail
        out["instance"] = instance
        out.update({k: v for k, v in self.extra.items() if v is not None})
        return out


def not_found(kind: str, ident: object) -> DomainError:
    """The one answer for "absent" and "not yours" alike: existence is never revealed."""
    return DomainError(NOT_FOUND, f"no {kind} {ident}")
