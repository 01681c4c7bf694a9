"""`POST /v1/registrations`: one signup, exactly once per Idempotency-Key."""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from paywall.db import engine
from paywall.logs import get_logger
from paywall.settings import get_settings
from transactional.common.headers import IDEMPOTENCY_KEY_RESPONSES, IdempotencyKey
from transactional.common.problems import PROBLEM_JSON, Problem
from transactional.common.security import Principal, require
from transactional.common.service_client import ServiceError
from transactional.registration import keys, saga
from transactional.registration.models import Registration, RegistrationRequest

router = APIRouter(tags=["registrations"])
log = get_logger(__name__)
Caller = Annotated[Principal, Depends(require("registrations:write"))]
DUPLICATE_WAIT_SECONDS = 20.0


@lru_cache(maxsize=1)
def _services() -> saga.Services:
    return saga.Services.from_settings(get_settings())


def _problem_body(
    status: int, title: str, detail: str, type_: str = "about:blank", **extra: Any
) -> dict[str, Any]:
    return {
        "type": type_,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": "/v1/registrations",
        **extra,
    }


def _replay(claim: keys.Claim) -> JSONResponse:
    assert claim.response_status is not None and claim.response_body is not None
    media = "application/json" if claim.response_status < 400 else PROBLEM_JSON
    return JSONResponse(
        claim.response_body,
        status_code=claim.response_status,
        media_type=media,
        headers={"Idempotent-Replayed": "true"},
    )


@router.post(
    "/v1/registrations",
    status_code=201,
    response_model=Registration,
    responses={
        **IDEMPOTENCY_KEY_RESPONSES,
        402: {"description": "The card was declined; nothing stays active; retry with a new key"},
        409: {"description": "Already registered, or the same key is still in progress"},
        422: {"description": "Invalid body, or the key was used with other parameters"},
        503: {"description": "A downstream service is unavailable; retry with the same key"},
    },
)
def register(
    body: RegistrationRequest,
    principal: Caller,
    idempotency_key: IdempotencyKey,
) -> JSONResponse:
    settings = get_settings()
    with engine(settings).begin() as conn:
        claim = keys.claim(conn, principal.client_id, idempotency_key, body)
    if not claim.fresh:
        return _answer_duplicate(claim, principal, idempotency_key, body)

    try:
        result = saga.run(_services(), settings, claim.id, body, principal)
    except saga.Declined as exc:
        problem = _problem_body(
            402,
            "Payment Declined",
            str(exc.problem.get("detail") or "the card was declined"),
            "https://paywall.dev/problems/payment-declined",
            decline_code=exc.problem.get("decline_code"),
        )
        return _finish(claim, 402, problem, "registration.failed", {"reason": "payment_declined"})
    except saga.AlreadyRegistered as exc:
        problem = _problem_body(
            409, "Already Registered", "this email already has a live subscription"
        )
        return _finish(
            claim,
            409,
            problem,
            "registration.failed",
            {"reason": "already_registered", "customer_id": str(exc)},
        )
    except saga.Rejected as exc:
        status = exc.status if exc.status != 404 else 422
        problem = _problem_body(
            status,
            str(exc.problem.get("title", "Rejected")),
            str(exc),
            str(exc.problem.get("type", "about:blank")),
        )
        return _finish(claim, status, problem, "registration.failed", {"reason": "rejected"})
    except ServiceError as exc:
        # Passing trouble: the key is freed so the client's retry resumes the saga.
        log.warning("registration.downstream_failed", service=exc.service, status=exc.status)
        with engine(settings).begin() as conn:
            keys.release(conn, claim.id)
        raise Problem(
            503,
            "Service Unavailable",
            f"{exc.service} is unavailable; retry",
            headers={"Retry-After": "2"},
        ) from exc
    data = result.model_dump(mode="json")
    return _finish(
        claim,
        201,
        data,
        "registration.completed",
        {
            "registration_id": str(claim.id),
            "customer_id": data["customer_id"],
            "subscription_id": data["subscription_id"],
            "plan_id": data["plan_id"],
            "subscription_status": data["subscription_status"],
            "email": body.email,
            "phone": body.phone,
            "name": body.name,
            "tenant_id": principal.tenant_id,
            "trial": body.trial,
            "marketing_opt_in": body.marketing_opt_in,
        },
    )


def _finish(
    claim: keys.Claim, status: int, body: dict[str, Any], event: str, event_data: dict[str, Any]
) -> JSONResponse:
    with engine(get_settings()).begin() as conn:
        keys.finish(
            conn,
            claim.id,
            "completed" if status < 400 else "failed",
            status,
            body,
            event,
            {"registration_id": str(claim.id), **event_data},
        )
    media = "application/json" if status < 400 else PROBLEM_JSON
    return JSONResponse(body, status_code=status, media_type=media)


def _answer_duplicate(
    claim: keys.Claim, principal: Principal, key: str, body: RegistrationRequest
) -> JSONResponse:
    if claim.fingerprint != keys.fingerprint(body):
        raise Problem(
            422,
            "Idempotency Key Reused",
            "this Idempotency-Key was used with other parameters",
            type_="https://paywall.dev/problems/idempotency-key-reused",
        )
    # A concurrent duplicate waits for the first request and then answers as it did.
    deadline = time.monotonic() + DUPLICATE_WAIT_SECONDS
    current: keys.Claim | None = claim
    while current is not None and current.status == "in_progress":
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
        with engine(get_settings()).connect() as conn:
            current = keys.load(conn, principal.client_id, key)
    if current is None:  # the first request failed for a passing reason and freed the key
        raise Problem(
            503,
            "Service Unavailable",
            "the first request with this key failed; retry",
            headers={"Retry-After": "1"},
        )
    claim = current
    if claim.status == "in_progress":
        raise Problem(
            409,
            "Request In Progress",
            "a request with this Idempotency-Key is still running; retry later",
            headers={"Retry-After": "2"},
        )
    return _replay(claim)
