"""A billing charge's call to the payment service: paced, and backed off when Stripe is busy.

Each attempt first takes a place in the Stripe budget (pacing.py). When the processor is
rate limiting, or the payment service or its database is briefly gone, the payment service
answers 503 with Retry-After (Stripe's own Retry-After when Stripe gave one); the call then
waits (exponential with full jitter, never less than Retry-After) and asks again with the
same Idempotency-Key. That is safe by construction: the payment service answers a key it
has settled with its first answer, and settles a key it has not by asking Stripe what
became of it before creating the PaymentIntent under the same Stripe Idempotency-Key.

A call that is still refused after the last attempt is an error, never a decline: the
invoice stays open and keeps its attempt and key, and the next run asks again. The run's
other charges then rest (`Backoff.rest_seconds`) instead of each backing off in turn.

Inside the payment service, stripe-python's own retries (max_network_retries, short and
without Retry-After) already retry what Stripe marks `Stripe-Should-Retry: true`, with the
same key; these are the longer waits that should not hold a request open.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    wait_random_exponential,
)

from assets.billing.pacing import Pace
from paywall.logs import get_logger
from paywall.service_client import Reply, ServiceClient, ServiceError

log = get_logger(__name__)
# The answers that say "not now" rather than "no": the processor rate limiting, a gateway
# or the payment service passing trouble on. Nothing was charged, or the key finds it.
BUSY = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class Backoff:
    attempts: int = 10
    base_seconds: float = 0.5
    max_seconds: float = 30.0
    # Once a charge met "busy" to its last attempt, the run's other charges are not tried
    # for this long: they stay open for the next run (Dagster's retry, or tomorrow's)
    # rather than each spending a minute of backoff against a processor that is down.
    rest_seconds: float = 60.0


def pause(jittered: float, retry_after: float | None) -> float:
    """The exponential, jittered wait; never sooner than Retry-After when one was given,
    spread over half as much again so that the threads and pods told the same moment do
    not all come back at it."""
    if not retry_after:
        return jittered
    return max(jittered, retry_after + random.uniform(0, retry_after / 2))


class PacedPayments:
    def __init__(self, payments: ServiceClient, pace: Pace, backoff: Backoff = Backoff()) -> None:
        self.payments = payments
        self.pace = pace
        self.backoff = backoff
        self._exponential = wait_random_exponential(
            multiplier=backoff.base_seconds, max=backoff.max_seconds
        )
        self._resting_until = 0.0

    def create(self, body: dict[str, Any], idempotency_key: str) -> tuple[int, dict[str, Any]]:
        """POST /v1/payments until it answers other than busy, or the attempts run out."""
        if time.monotonic() < self._resting_until:
            return 503, {"detail": "not tried: the processor stayed busy for another charge"}
        retrying = Retrying(
            retry=retry_if_result(lambda r: r.status in BUSY)
            | retry_if_exception_type(ServiceError),
            wait=self._wait,
            stop=stop_after_attempt(self.backoff.attempts),
            before_sleep=self._log,
            # The last answer (or error) is the outcome: busy to the end is not a decline.
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )
        try:
            reply: Reply = retrying(self._once, body, idempotency_key, itertools.count())
        except ServiceError:
            self._rest()
            raise
        if reply.status in BUSY:
            self._rest()
        return reply.status, reply.body

    def _rest(self) -> None:
        self._resting_until = time.monotonic() + self.backoff.rest_seconds

    def _once(self, body: dict[str, Any], idempotency_key: str, tries: Iterator[int]) -> Reply:
        # A retry is two Stripe calls: the payment service first looks for what the earlier
        # try made (a list), then creates.
        self.pace.wait(1 if next(tries) == 0 else 2)
        # One HTTP attempt: the waits between attempts are this module's, not the client's.
        return self.payments.reply(
            "POST", "/v1/payments", json=body, idempotency_key=idempotency_key, attempts=1
        )

    def _wait(self, state: RetryCallState) -> float:
        outcome = state.outcome
        told = None if outcome is None or outcome.failed else outcome.result().retry_after
        return pause(self._exponential(state), told)

    def _log(self, state: RetryCallState) -> None:
        outcome = state.outcome
        if outcome is None:
            return
        what = (
            str(outcome.exception())[:200] if outcome.failed else f"http {outcome.result().status}"
        )
        log.info(
            "billing.charge.busy",
            attempt=state.attempt_number,
            answer=what,
            wait_seconds=round(state.upcoming_sleep, 2),
        )
