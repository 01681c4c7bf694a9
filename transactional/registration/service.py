"""What `POST /v1/registrations` does, apart from HTTP: one signup per Idempotency-Key.

Every path ends in one of two ways, never a stuck key:
* finished: a final answer (201, or a 4xx the same request would get again) is stored with
  the key and its event, and every replay repeats it;
* unfinished: anything passing (a service or Stripe unreachable, the database gone, a
  crash) answers 503 and leaves the key in progress with the steps already done; the
  client's retry with the same key, or the recovery sweep, takes it from there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydantic import SecretStr
from sqlalchemy import Engine

from paywall.logs import get_logger
from paywall.settings import get_settings
from transactional.common.problems import Problem
from transactional.common.security import Principal
from transactional.common.service_client import IN_PROGRESS_TYPE, ServiceError
from transactional.registration import keys, saga
from transactional.registration.keys import Claim, Run
from transactional.registration.models import RegistrationRequest, SignupDetails

log = get_logger(__name__)
PROBLEMS = "https://paywall.dev/problems"
INSTANCE = "/v1/registrations"
# A duplicate waits this long for the request holding its key, then answers 409.
DUPLICATE_WAIT_SECONDS = 20.0


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    replayed: bool = False


@lru_cache(maxsize=1)
def services() -> saga.Services:
    return saga.Services.from_settings(get_settings())


def register(engine: Engine, principal: Principal, key: str, body: RegistrationRequest) -> Answer:
    deadline = time.monotonic() + DUPLICATE_WAIT_SECONDS
    while True:
        with engine.begin() as conn:
            claim = keys.claim(conn, principal.client_id, principal.tenant_id, key, body)
        if claim.fingerprint != keys.fingerprint(body):
            raise Problem(
                422,
                "Idempotency Key Reused",
                "this Idempotency-Key was used with other parameters",
                type_=f"{PROBLEMS}/idempotency-key-reused",
            )
        if claim.finished:
            return _replay(claim)
        with keys.running(engine, claim.id) as run:
            if run is not None:
                state = run.state()
                if state is None:
                    continue  # released by the recovery sweep a moment ago: claim afresh
                if state.finished:
                    return _replay(state)
                return _advance(run, state, body.details(), body.password)
        # Another request holds the key: answer as it will, once it has.
        if time.monotonic() > deadline:
            raise Problem(
                409,
                "Request In Progress",
                "a request with this Idempotency-Key is still running; retry later",
                type_=IN_PROGRESS_TYPE,
                headers={"Retry-After": "2"},
            )
        time.sleep(0.1)


def resume(run: Run, state: Claim) -> Answer | None:
    """Finish an abandoned signup without its client; None when it moved no money yet.

    Past the login step the password is no longer needed and the saga goes on to the end;
    before it no charge can exist, so the key is released and the client's retry (with
    the password) starts afresh.
    """
    if not state.past_login:
        run.release()
        return None
    return _advance(run, state, state.details(), None)


def _advance(
    run: Run,
    state: Claim,
    signup: SignupDetails,
    password: SecretStr | None,
) -> Answer:
    try:
        result = saga.run(services(), run, state, signup, password, state.tenant_id)
    except saga.Declined as exc:
        problem = _problem(
            402,
            "Payment Declined",
            str(exc.problem.get("detail") or "the card was declined"),
            f"{PROBLEMS}/payment-declined",
            decline_code=exc.problem.get("decline_code"),
        )
        return _finish(run, 402, problem, {"reason": "payment_declined"})
    except saga.AlreadyRegistered as exc:
        problem = _problem(
            409,
            "Already Registered",
            "this email already has a live subscription or a login",
            f"{PROBLEMS}/already-registered",
        )
        return _finish(run, 409, problem, {"reason": "already_registered", "customer_id": str(exc)})
    except saga.Rejected as exc:
        status = exc.status if exc.status != 404 else 422
        problem = _problem(
            status,
            str(exc.problem.get("title", "Rejected")),
            str(exc),
            str(exc.problem.get("type", "about:blank")),
        )
        return _finish(run, status, problem, {"reason": "rejected"})
    except Exception as exc:
        # Passing trouble, or a crash of our own: nothing final happened, so nothing is
        # stored; the key stays in progress and the next try resumes from the last step.
        if isinstance(exc, ServiceError):
            log.warning("registration.unfinished", service=exc.service, status=exc.status)
        else:
            log.error("registration.unfinished", error=type(exc).__name__, step=state.step)
        raise Problem(
            503,
            "Service Unavailable",
            "the signup could not finish now; retry with the same Idempotency-Key",
            type_=f"{PROBLEMS}/signup-unfinished",
            headers={"Retry-After": "2"},
        ) from exc
    data = result.model_dump(mode="json")
    return _finish(
        run,
        201,
        data,
        {
            "customer_id": data["customer_id"],
            "subscription_id": data["subscription_id"],
            "plan_id": data["plan_id"],
            "subscription_status": data["subscription_status"],
            "email": signup.email,
            "phone": signup.phone,
            "name": signup.name,
            "tenant_id": state.tenant_id,
            "trial": signup.trial,
            "marketing_opt_in": signup.marketing_opt_in,
        },
    )


def _finish(run: Run, status: int, body: dict[str, Any], event: dict[str, Any]) -> Answer:
    run.finish(
        "completed" if status < 400 else "failed",
        status,
        body,
        "registration.completed" if status < 400 else "registration.failed",
        {"registration_id": str(run.id), **event},
    )
    return Answer(status, body)


def _replay(claim: Claim) -> Answer:
    assert claim.response_status is not None and claim.response_body is not None
    return Answer(claim.response_status, claim.response_body, replayed=True)


def _problem(status: int, title: str, detail: str, type_: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": type_,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": INSTANCE,
        **extra,
    }
