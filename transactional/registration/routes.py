"""`POST /v1/registrations`: one signup, exactly once per Idempotency-Key."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from paywall.db import engine
from paywall.settings import get_settings
from transactional.common import tenancy
from transactional.common.headers import IDEMPOTENCY_KEY_RESPONSES, IdempotencyKey
from transactional.common.problems import PROBLEM_JSON
from transactional.common.security import Principal, require
from transactional.registration import recovery, service
from transactional.registration.models import Registration, RegistrationRequest

router = APIRouter(tags=["registrations"])
# A signup makes a customer of the caller's tenant: a client of no tenant may not sign up.
Caller = Annotated[Principal, Depends(tenancy.member("registrations:write"))]
Operator = Annotated[Principal, Depends(require("operations", "internal"))]


@router.post(
    "/v1/registrations",
    status_code=201,
    response_model=Registration,
    responses={
        **IDEMPOTENCY_KEY_RESPONSES,
        402: {"description": "The card was declined; nothing stays active; retry with a new key"},
        409: {"description": "Already registered, or the same key is still in progress"},
        422: {"description": "Invalid body, or the key was used with other parameters"},
        503: {"description": "Could not finish now; retry with the same key (it resumes)"},
    },
)
def register(
    body: RegistrationRequest,
    principal: Caller,
    idempotency_key: IdempotencyKey,
) -> JSONResponse:
    answer = service.register(engine(get_settings()), principal, idempotency_key, body)
    return JSONResponse(
        answer.body,
        status_code=answer.status,
        media_type="application/json" if answer.status < 400 else PROBLEM_JSON,
        headers={"Idempotent-Replayed": "true"} if answer.replayed else None,
    )


@router.post(
    "/v1/operations/signup-recovery",
    response_model=recovery.SweepReport,
    summary="Finish signups left between steps (internal; the recovery schedule)",
)
def recover(
    _: Operator,
    older_than_seconds: Annotated[int, Query(ge=0, le=7 * 24 * 3600)] = 300,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> recovery.SweepReport:
    return recovery.sweep(
        engine(get_settings()), timedelta(seconds=older_than_seconds), limit=limit
    )
