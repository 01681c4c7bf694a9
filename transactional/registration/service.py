"""What `POST /v1/registrations` does, apart from HTTP: one signup per Idempotency-Key.

Every path ends in one of two ways, never a stuck key:
* finished: a final answer (201, or a 4xx the same request would get again) is stored with
  the key and its event, and every replay repeats it;
* unfinished: anything passing (a service or Stripe unreachable, the database gone, a
  crash) answers 503 and leaves the key in progress with the steps already done; the
  client's retry with the same key, or the recovery sweep, takes it from there.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from prometheus_client import Counter
from pydantic import SecretStr
from sqlalchemy import Engine

from paywall import privacy
from paywall.logs import get_logger
from paywall.service_client import ServiceError
from paywall.settings import get_settings
from transactional.common import errors, idempotency
from transactional.common.errors import DomainError
from transactional.common.idempotency import Answer
from transactional.common.security import Principal
from transactional.registration import repository, saga
from transactional.registration.models import RegistrationRequest, SignupDetails
from transactional.registration.repository import Claim, Run

log = get_logger(__name__)
INSTANCE = "/v1/registrations"
# Counted when a signup's answer is decided (a replay is not counted again). `unfinished`
# is a 503 that the client's retry or the recovery sweep resumes.
SIGNUPS = Counter(
    "paywall_signups_total",
    "Signups by outcome: completed, declined (the card), already_registered, rejected "
    "(input refused downstream) or unfinished (resumed later)",
    ["outcome"],
)


@lru_cache(maxsize=1)
def services() -> saga.Services:
    return saga.Services.from_settings(get_settings())


def register(engine: Engine, principal: Principal, key: str, body: RegistrationRequest) -> Answer:
    owner = idempotency.owner(principal)
    while True:
        with engine.begin() as conn:
            claim = repository.claim(conn, owner, principal.tenant_id, key, body)
        idempotency.check_same(claim.fingerprint, repository.fingerprint(body))
        if claim.finished:
            return _replay(claim)
        with repository.running(engine, claim) as run:  # 409 while another request has it
            state = run.state()
            if state is None:
                continue  # released by the recovery sweep a moment ago: claim afresh
            if state.finished:
                return _replay(state)
            return _advance(run, state, body.details(), body.password)


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
        declined = DomainError(
            errors.PAYMENT_DECLINED,
            str(exc.problem.get("detail") or "the card was declined"),
            decline_code=exc.problem.get("decline_code"),
        )
        return _finish(run, declined, {"reason": "payment_declined"}, "declined")
    except saga.AlreadyRegistered as exc:
        taken = DomainError(
            errors.ALREADY_REGISTERED, "this email already has a live subscription or a login"
        )
        event = {"reason": "already_registered", "customer_id": str(exc)}
        return _finish(run, taken, event, "already_registered")
    except saga.Rejected as exc:
        return _finish(run, _rejected(exc), {"reason": "rejected"}, "rejected")
    except Exception as exc:
        # Passing trouble, or a crash of our own: nothing final happened, so nothing is
        # stored; the key stays in progress and the next try resumes from the last step.
        if isinstance(exc, ServiceError):
            log.warning("registration.unfinished", service=exc.service, status=exc.status)
        else:
            log.error("registration.unfinished", error=type(exc).__name__, step=state.step)
        SIGNUPS.labels("unfinished").inc()
        raise DomainError(
            errors.SIGNUP_UNFINISHED,
            "the signup could not finish now; retry with the same Idempotency-Key",
            headers={"Retry-After": "2"},
        ) from exc
    data = result.model_dump(mode="json")
    run.finish(
        "completed",
        201,
        data,
        "registration.completed",
        lambda conn: privacy.seal(
            conn,
            data["customer_id"],
            {
                "registration_id": str(run.id),
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
        ),
    )
    SIGNUPS.labels("completed").inc()
    return Answer(201, data)


def _rejected(exc: saga.Rejected) -> DomainError:
    """A downstream refusal of the client's input, passed on under its registered type; a
    thing the signup names that does not exist (404 downstream) is invalid input here."""
    slug = str(exc.problem.get("type", "")).rsplit("/", 1)[-1]
    kind = errors.REGISTRY.get(slug, errors.VALIDATION)
    return DomainError(errors.VALIDATION if kind.status == 404 else kind, str(exc))


def _finish(run: Run, refusal: DomainError, event: dict[str, Any], outcome: str) -> Answer:
    """A final refusal: stored with the key and sent as an event, like a success."""
    body = refusal.body(INSTANCE)
    run.finish(
        "failed",
        refusal.problem.status,
        body,
        "registration.failed",
        {"registration_id": str(run.id), **event},
    )
    SIGNUPS.labels(outcome).inc()
    return Answer(refusal.problem.status, body)


def _replay(claim: Claim) -> Answer:
    assert claim.response_status is not None and claim.response_body is not None
    return Answer(claim.response_status, claim.response_body, replayed=True)
