"""Request and response bodies of the registration API."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    SecretStr,
    StrictBool,
    StringConstraints,
)

from transactional.common.money import PaymentMethodId
from transactional.common.text import non_blank

Phone = Annotated[str, StringConstraints(pattern=r"^\+[1-9][0-9]{6,14}$")]
CouponCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class Address(BaseModel):
    model_config = ConfigDict(extra="forbid")

    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
    region: Annotated[str, StringConstraints(min_length=1, max_length=50)] | None = None


class SignupDetails(BaseModel):
    """What a signup asks for, but the password: what is kept to finish it after a crash."""

    model_config = ConfigDict(extra="forbid")

    email: EmailStr
    name: Annotated[str, non_blank(200)]
    phone: Phone | None = None
    plan_id: str = Field(min_length=1, max_length=100)
    trial: StrictBool = False
    payment_method_id: PaymentMethodId
    marketing_opt_in: StrictBool = False
    coupon: CouponCode | None = Field(
        None, description="A coupon of the tenant: refused (422) before anything is charged"
    )
    address: Address | None = Field(None, description="The billing address: picks the tax rate")


class RegistrationRequest(SignupDetails):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "email": "ada@example.com",
                    "password": "correct horse battery staple",
                    "name": "Ada Lovelace",
                    "phone": "+447700900123",
                    "plan_id": "pro-monthly",
                    "trial": False,
                    "payment_method_id": "pm_1Q0PsIJvEtkwdCNYMSaVuRz6",
                    "marketing_opt_in": True,
                }
            ]
        },
    )

    password: SecretStr = Field(min_length=10, max_length=200)

    def details(self) -> SignupDetails:
        return SignupDetails.model_validate(self.model_dump(exclude={"password"}))


class PaymentSummary(BaseModel):
    id: str
    status: str
    amount: int
    currency: str


class Registration(BaseModel):
    registration_id: UUID
    status: str
    customer_id: UUID
    subscription_id: UUID
    subscription_status: str
    plan_id: str
    payment: PaymentSummary | None = None
