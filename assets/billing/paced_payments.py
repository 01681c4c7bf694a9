"""A billing run's charges, sent to the payment service in batches: paced, and backed off
when Stripe is busy.

A batch (`POST /v1/payment-batches`) makes each charge as its own `POST /v1/payments`
would, under its own Idempotency-Key, and answers each; it saves the request around every
charge, not any of its steps. Each attempt first takes a place in the Stripe budget per
charge it sends (pacing.py). When the processor is rate limiting, or the payment service or
its database is briefly gone, the charges concerned are answered 503 with Retry-After
(Stripe's own when Stripe gave one), or the batch gets no answer at all; those charges,
and only those, are then asked again after a wait (exponential with full jitter, never less
than Retry-After) with the same keys. That is safe by construction: the payment service
answers a key it has settled with its first answer, and settles a key it has not by asking
Stripe what became of it before creating the PaymentIntent under the same Stripe
Idempotency-Key.

A charge still refused after the last attempt is an error, never a decline: the invoice
stays open and keeps its attempt and key, and the next run asks again. The run's other
charges then rest (`Backoff.rest_seconds`) instead of each backing off in turn.

Inside the payment service, stripe-python's own retries (max_network_retries, short and
without Retry-After) already retry what Stripe marks `Stripe-Should-Retry: true`, with the
same key; these are the longer waits that should not hold a request open.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tenacity import (
    RetryCallState,
    Retrying,
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
# The payment service's batches; a charge in one is answered as `POST /v1/payments` would.
BATCHES = "/v1/payment-batches"


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


@dataclass(frozen=True)
class Charge:
    """One charge of a batch: the body `POST /v1/payments` takes, under its key."""

    body: dict[str, Any]
    idempotency_key: str

    def payload(self) -> dict[str, Any]:
        return {**self.body, "idempotency_key": self.idempotency_key}


@dataclass(frozen=True)
class Answered:
    """What the payment service answered for one charge, as its own call would have."""

    status: int
    body: dict[str, Any]


class PacedPayments:
    def __init__(self, payments: ServiceClient, pace: Pace, backoff: Backoff = Backoff()) -> None:
        self.payments = payments
        self.pace = pace
        self.backoff = backoff
        self._exponential = wait_random_exponential(
            multiplier=backoff.base_seconds, max=backoff.max_seconds
        )
        self._resting_until = 0.0

    def create(self, charges: list[Charge]) -> list[Answered | ServiceError]:
        """POST /v1/payment-batches, asking again for the charges answered busy (same
        keys) until each is answered otherwise or the attempts run out. One answer per
        charge, in order: the payment service's, or the error that left it unanswered."""
        if time.monotonic() < self._resting_until:
            rested = Answered(503, {"detail": "not tried: the processor stayed busy"})
            return [rested] * len(charges)
        batch = _Batch(charges)
        retrying = Retrying(
            retry=retry_if_result(bool),  # some charges still answered busy
            wait=lambda state: pause(self._exponential(state), batch.retry_after),
            stop=stop_after_attempt(self.backoff.attempts),
            before_sleep=self._log,
            # Busy to the end is not a decline: those charges keep their last answer.
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )
        if retrying(self._once, batch):
            self._resting_until = time.monotonic() + self.backoff.rest_seconds
        return batch.answers()

    def _once(self, batch: _Batch) -> list[int]:
        """One HTTP attempt for the charges still waiting; those left busy after it."""
        waiting = batch.waiting
        # A retry is two Stripe calls: the payment service first looks for what the earlier
        # try made (a list), then creates.
        self.pace.wait(sum(1 if batch.tries[i] == 0 else 2 for i in waiting))
        body = {"payments": [batch.charges[i].payload() for i in waiting]}
        try:
            # One HTTP attempt: the waits between attempts are this module's, not the client's.
            reply: Reply = self.payments.reply("POST", BATCHES, json=body, attempts=1)
        except ServiceError as exc:  # no answer at all (503): each charge is asked again
            batch.record(waiting, [exc] * len(waiting), None)
        else:
            if reply.status == 200:
                results = reply.body["results"]
                answers = [Answered(r["status"], r["body"]) for r in results]
                told = [r.get("retry_after") for r in results if r["status"] in BUSY]
                batch.record(waiting, answers, max((t for t in told if t), default=None))
            else:
                # The batch as a whole was refused or failed (a payment service without
                # batches answers 404): nothing says any charge was declined, so each is
                # an error, asked again now only when the answer said "busy".
                failed = ServiceError(self.payments.service, reply.status, reply.body)
                batch.record(waiting, [failed] * len(waiting), reply.retry_after)
        return batch.waiting

    def _log(self, state: RetryCallState) -> None:
        outcome = state.outcome
        if outcome is None or outcome.failed:
            return
        log.info(
            "billing.charge.busy",
            attempt=state.attempt_number,
            charges=len(outcome.result()),
            wait_seconds=round(state.upcoming_sleep, 2),
        )


class _Batch:
    """The charges of one `create`: each one's latest answer and how often it was sent."""

    def __init__(self, charges: list[Charge]) -> None:
        self.charges = charges
        self.tries = [0] * len(charges)
        self.waiting = list(range(len(charges)))
        self.retry_after: float | None = None
        self._answers: list[Answered | ServiceError | None] = [None] * len(charges)

    def record(
        self,
        slots: list[int],
        answers: Sequence[Answered | ServiceError],
        retry_after: float | None,
    ) -> None:
        for i, answer in zip(slots, answers, strict=True):
            self.tries[i] += 1
            self._answers[i] = answer
        self.retry_after = retry_after
        self.waiting = [i for i in slots if _busy(self._answers[i])]

    def answers(self) -> list[Answered | ServiceError]:
        # Position i answers charge i: a gap must stop the run, never shift the answers
        # (an assert after filtering would, under python -O). Every charge is sent on the
        # first attempt, so there is none.
        if None in self._answers:
            raise RuntimeError("a charge of this batch was never sent")
        return [a for a in self._answers if a is not None]


def _busy(answer: Answered | ServiceError | None) -> bool:
    return answer is not None and answer.status in BUSY
