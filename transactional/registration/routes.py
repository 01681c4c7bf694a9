"""`POST /v1/registrations`: one signup, exactly once per Idempotency-Key; and the
operators' recovery sweep."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from transactional.common import errors, idempotency, tenancy
from transactional.common.api_document import problems_answered
from transactional.common.deps import Db
from transactional.common.idempotency import IdempotencyKey
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
        **idempotency.RESPONSES,
        402: {"description": "The card was declined; nothing stays active; retry with a new key"},
        409: {"description": "Already registered, or the same key is still in progress"},
        503: {"description": "Could not finish now; retry with the same key (it resumes)"},
    },
    openapi_extra=problems_answered(
        errors.ALREADY_REGISTERED,
        errors.PAYMENT_DECLINED,
        errors.UNKNOWN_PLAN,
        errors.SIGNUP_UNFINISHED,
    ),
)
def register(
    body: RegistrationRequest, principal: Caller, key: IdempotencyKey, db: Db
) -> JSONResponse:
    return idempotency.respond(service.register(db, principal, key, body))


@router.post(
    "/v1/operations/signup-recovery",
    response_model=recovery.SweepReport,
    summary="Finish signups left between steps (internal; the recovery schedule)",
)
def recover(
    _: Operator,
    db: Db,
    older_than_seconds: Annotated[int, Query(ge=0, le=7 * 24 * 3600)] = 300,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> recovery.SweepReport:
    return recovery.sweep(db, timedelta(seconds=older_than_seconds), limit=limit)
