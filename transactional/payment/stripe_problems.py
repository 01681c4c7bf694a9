"""Stripe trouble as the payment service's client sees it (problem+json)."""

from __future__ import annotations

from typing import Any

from paywall.logs import get_logger
from transactional.common import errors
from transactional.common.errors import DomainError
from transactional.payment.stripe_gateway import Rejected, Unavailable

log = get_logger(__name__)


class stripe_problems:
    """Unreachable, failing or rate limiting 503 with Retry-After (a retry with the same
    key is safe), a card declined 402, refused 422; with `refusal_is_outcome` a refusal goes on
    to the caller, which records it (a charge or refund Stripe would not make)."""

    def __init__(self, *, refusal_is_outcome: bool = False) -> None:
        self.refusal_is_outcome = refusal_is_outcome

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _: Any) -> None:
        if isinstance(exc, Unavailable):
            log.warning("stripe.unavailable", error=str(exc))
            raise DomainError(
                errors.PROCESSOR_UNAVAILABLE,
                "Stripe could not be reached or is busy; retry with the same Idempotency-Key "
                "after Retry-After",
                headers={"Retry-After": str(exc.retry_after)},
            ) from None
        if isinstance(exc, Rejected) and exc.http_status == 402:
            # A card declined when attached is a decline, as at charge time: 402.
            raise DomainError(
                errors.PAYMENT_DECLINED,
                exc.message or "the card was declined",
                decline_code=exc.code,
            ) from None
        if isinstance(exc, Rejected) and not self.refusal_is_outcome:
            raise DomainError(
                errors.PROCESSOR_REJECTED, exc.message, stripe_code=exc.code
            ) from None
