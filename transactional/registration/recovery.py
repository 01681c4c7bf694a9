"""The recovery sweep: signups a crash or a lost client left between steps, finished.

A signup whose client got a 503 and never retried would otherwise sit half-done: a
customer charged and a subscription `incomplete`, or a charge still pending. The sweep
takes each unfinished signup nobody has touched for a while, under the same lock a request
takes, and resumes it: past the login it runs to the end (activated, or declined and
canceled, or refunded if canceled meanwhile) and stores the final answer for the client's
replay; before the login no money can have moved, so its key is released.
"""

from __future__ import annotations

from datetime import timedelta

from prometheus_client import Counter
from pydantic import BaseModel, Field
from sqlalchemy import Engine

from paywall.logs import get_logger
from transactional.common import errors
from transactional.common.errors import DomainError
from transactional.registration import repository
from transactional.registration.repository import Claim
from transactional.registration.service import resume

log = get_logger(__name__)
RECOVERED = Counter(
    "paywall_signup_recovery_total", "Unfinished signups the sweep handled", ["outcome"]
)


class SweepReport(BaseModel):
    examined: int = 0
    completed: int = Field(default=0, description="Finished with 201 (activated or trialing)")
    failed: int = Field(
        default=0, description="Finished with a final refusal (declined, canceled...)"
    )
    released: int = Field(default=0, description="Moved no money yet: the key was freed")
    busy: int = Field(default=0, description="A request holds it right now")
    unfinished: int = Field(default=0, description="Still failing (a service down): next sweep")


def sweep(engine: Engine, older_than: timedelta, limit: int = 100) -> SweepReport:
    report = SweepReport()
    with engine.connect() as conn:
        stale = repository.stale(conn, older_than, limit)
    for claim in stale:
        report.examined += 1
        outcome = _one(engine, claim)
        setattr(report, outcome, getattr(report, outcome) + 1)
        RECOVERED.labels(outcome).inc()
    if report.examined:
        log.info("registration.recovery", **report.model_dump())
    return report


def _one(engine: Engine, claim: Claim) -> str:
    try:
        with repository.running(engine, claim) as run:
            state = run.state()
            if state is None or state.finished:
                return "busy"  # finished by a request between the listing and the lock
            answer = resume(run, state)
    except DomainError as exc:
        # Held by a request right now (409), or still failing (a service down): next sweep.
        return "busy" if exc.problem is errors.IDEMPOTENCY_IN_PROGRESS else "unfinished"
    if answer is None:
        return "released"
    return "completed" if answer.status < 400 else "failed"
