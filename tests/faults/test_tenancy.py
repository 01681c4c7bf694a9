"""Cross-tenant reads and writes on every route: refused, and nothing changes.

Tenant A owns a customer with a payment account, a card, a payment, a refund and a
subscription, all made through the API on the real stack (Postgres, Redis, localstripe).
The walker takes every operation of every service from the combined app's OpenAPI
document, so a route added later is walked too, and calls each with another caller's
token aimed at A's objects: A's ids in the path, in the body (and a variant without
each optional reference) and in the query. Each answer must be a refusal (404 for "not
yours"; 403 only for a missing scope, for naming another tenant, or for a client of no
tenant) that names none of A's objects the request did not name itself; afterwards
Postgres and localstripe must hold exactly what they held.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from paywall.clients import stripe_client
from paywall.db import engine
from paywall.stack.process import free_port
from tests.conftest import Api, client_token, register_client
from tests.faults.conftest import ServedApi
from tests.integration.test_signup import end_user_token
from transactional.auth.clients import USER_SCOPES

pytestmark = pytest.mark.integration

Operation = tuple[str, str]

# Every scope a partner's client can be given. Not `internal` (trusted services only)
# and not `users:write` (only the registration service creates logins).
PARTNER_SCOPES = (
    "customers:read customers:write subscriptions:read subscriptions:write "
    "payments:read payments:write registrations:write users:write invoices:read "
    "invoices:write webhooks:read webhooks:write events:read coupons:read coupons:write "
    "tax_rates:read tax_rates:write plans:write"
)

# Operations that are not tenant data, with why. The walk fails when this list and the
# app disagree, so a new operation is walked unless someone says here why not.
NOT_TENANT_DATA: dict[Operation, str] = {
    ("GET", "/.well-known/openid-configuration"): "OIDC discovery, public",
    ("GET", "/jwks.json"): "the public signing keys",
    ("POST", "/oauth/token"): "tokens for the client that authenticates",
    ("POST", "/oauth/revoke"): "revokes a token its own client holds",
    ("POST", "/oauth/introspect"): "describes the token presented",
    ("GET", "/userinfo"): "the token's own user",
    ("POST", "/userinfo"): "the token's own user",
    ("GET", "/oauth/authorize"): "the login page",
    ("POST", "/oauth/authorize"): "a user's own login",
    # A user of A reads A's plans too (a plan is its tenant's, not a customer's): another
    # tenant's plans are absent to B in tests/integration/test_plans.py.
    ("GET", "/v1/plans"): "the price list: the platform's plans and the caller's tenant's",
    ("GET", "/v1/plans/{plan_id}"): "a plan of the caller's price list",
    ("POST", "/webhooks/stripe"): "Stripe's signed events; no token, no tenant",
    ("POST", "/v1/registrations"): (
        "names no existing object and no tenant: a signup makes a new customer of the "
        "caller's own tenant"
    ),
    ("GET", "/healthz"): "probe",
    ("GET", "/readyz"): "probe",
    **{
        op: "operators only (scopes operations + internal): refused to anyone else, below"
        for op in (
            ("POST", "/v1/operations/signup-recovery"),
            ("POST", "/v1/operations/payment-recovery"),
            ("GET", "/v1/operations/reconciliation"),
            ("POST", "/v1/operations/invoice-recovery"),
        )
    },
    **{
        op: "operators only (scope admin, a client of no tenant): refused to anyone else, below"
        for op in (
            ("POST", "/v1/tenants"),
            ("GET", "/v1/tenants"),
            ("POST", "/v1/clients"),
            ("GET", "/v1/clients"),
            ("GET", "/v1/clients/{client_id}"),
            ("POST", "/v1/clients/{client_id}/rotate-secret"),
            ("POST", "/v1/clients/{client_id}/disable"),
        )
    },
}
OPERATOR_ONLY = [op for op, why in NOT_TENANT_DATA.items() if why.startswith("operators only")]
# Lists answer 200 with the caller's own objects: none of A's may be among them.
LISTS = {
    ("GET", "/v1/customers"),
    ("GET", "/v1/invoices"),
    ("GET", "/v1/subscriptions"),
    ("GET", "/v1/payments"),
    ("GET", "/v1/credit_notes"),
    ("GET", "/v1/webhook-endpoints"),
    ("GET", "/v1/events"),
    ("GET", "/v1/coupons"),
    ("GET", "/v1/tax-rates"),
}
STRIPE_LISTS = ("customers", "payment_intents", "refunds")
PROBLEMS = "https://paywall.dev/problems"
NOT_FOUND = f"{PROBLEMS}/not-found"
MISSING_SCOPE = f"{PROBLEMS}/insufficient-scope"
OTHER_TENANT = f"{PROBLEMS}/forbidden-tenant"
TENANT_REQUIRED = f"{PROBLEMS}/tenant-required"


@dataclass(frozen=True)
class World:
    """Tenant A's objects, by the names the API gives their ids."""

    tenant: str
    customer_id: str  # with an account, a card, a payment, a refund and a subscription
    email: str
    new_customer_id: str  # with nothing yet: what creating an account or a subscription needs
    new_email: str
    sub_id: str
    payment_id: str
    refund_id: str
    invoice_id: str
    credit_note_id: str
    endpoint_id: str  # a webhook endpoint of A's
    stripe_ids: tuple[str, ...]
    coupon_id: str
    discount_id: str
    tax_rate_id: str
    plan_id: str  # a plan of A's catalog

    def refs(self, customer_id: str) -> dict[str, str]:
        """What the walker puts in a path parameter or body field of that name."""
        return {
            "customer_id": customer_id,
            "sub_id": self.sub_id,
            "subscription_id": self.sub_id,
            "payment_id": self.payment_id,
            "invoice_id": self.invoice_id,
            "credit_note_id": self.credit_note_id,
            "endpoint_id": self.endpoint_id,
            "tenant_id": self.tenant,
            "coupon_id": self.coupon_id,
            "discount_id": self.discount_id,
            "tax_rate_id": self.tax_rate_id,
            "plan_id": self.plan_id,
        }

    def query_refs(self, customer_id: str) -> dict[str, str]:
        """What it puts in a query parameter: the ids, and the email a search looks for."""
        email = self.email if customer_id == self.customer_id else self.new_email
        return {**self.refs(customer_id), "email": email}

    def secrets(self) -> set[str]:
        """Everything of A's: no refusal may name what the request did not name itself."""
        ids = {self.customer_id, self.new_customer_id, self.sub_id, self.payment_id}
        ids |= {self.refund_id, self.invoice_id, self.credit_note_id, self.endpoint_id}
        ids |= {self.coupon_id, self.discount_id, self.tax_rate_id, self.plan_id}
        return ids | {self.email, self.new_email, *self.stripe_ids}


@dataclass(frozen=True)
class Probe:
    method: str
    template: str
    path: str
    query: dict[str, str]
    body: dict[str, Any] | None

    @property
    def operation(self) -> Operation:
        return self.method, self.template

    def sent(self) -> str:
        return self.path + json.dumps(self.query) + json.dumps(self.body)

    def __str__(self) -> str:
        return f"{self.method} {self.path} {self.query or ''} {self.body or ''}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


def card(api: Api) -> str:
    pm = stripe_client(api.settings).v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"},
        }
    )
    return str(pm.id)


def new_customer(api: Api, token: str, tenant_id: str | None = None) -> dict[str, Any]:
    body = {"email": f"{uuid.uuid4().hex[:12]}@example.com", "name": "Ada"}
    if tenant_id is not None:
        body["tenant_id"] = tenant_id
    return created(httpx.post(f"{api.url}/v1/customers", json=body, headers=bearer(token)))


def subscribe(api: Api, token: str, customer_id: str, **extra: Any) -> httpx.Response:
    return httpx.post(
        f"{api.url}/v1/subscriptions",
        json={"customer_id": customer_id, "plan_id": "basic-monthly", "trial": True, **extra},
        headers=bearer(token),
    )


@pytest.fixture(scope="module")
def tenant_a() -> str:
    return f"tenant-a-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def token_a(issue_token: Callable[..., str], tenant_a: str) -> str:
    return issue_token(PARTNER_SCOPES, tenant_a)


@pytest.fixture(scope="module")
def token_b(issue_token: Callable[..., str]) -> str:
    return issue_token(PARTNER_SCOPES, f"tenant-b-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def internal(issue_token: Callable[..., str]) -> str:
    return issue_token(f"{PARTNER_SCOPES} users:write internal")


@pytest.fixture(scope="module")
def world(api: Api, token_a: str, tenant_a: str) -> World:
    """Tenant A's customer, account, card, payment, refund and subscription, by A itself."""
    auth = bearer(token_a)
    customer = new_customer(api, token_a)
    cid = customer["id"]
    account = created(
        httpx.post(
            f"{api.url}/v1/accounts",
            json={"customer_id": cid, "email": customer["email"]},
            headers=auth,
        )
    )
    created(
        httpx.post(
            f"{api.url}/v1/accounts/{cid}/payment-methods",
            json={"payment_method_id": card(api)},
            headers=auth,
        )
    )
    payment = created(
        httpx.post(
            f"{api.url}/v1/payments",
            json={"customer_id": cid, "amount": 1500, "currency": "usd"},
            headers={**auth, "Idempotency-Key": str(uuid.uuid4())},
        )
    )
    refund = created(
        httpx.post(
            f"{api.url}/v1/payments/{payment['id']}/refunds",
            json={"amount": 500},
            headers={**auth, "Idempotency-Key": str(uuid.uuid4())},
        )
    )
    sub = created(subscribe(api, token_a, cid))
    invoice_id = billing_run_invoice(api, sub)
    credit_note_id = customer_credit_note(api, sub)
    keyed = {**auth, "Idempotency-Key": str(uuid.uuid4())}
    coupon = created(
        httpx.post(
            f"{api.url}/v1/coupons",
            json={"code": "WALK10", "name": "A's", "percent_off": 10, "duration": "forever"},
            headers=keyed,
        )
    )
    discount = created(
        httpx.post(
            f"{api.url}/v1/discounts",
            json={"subscription_id": sub["id"], "coupon": "WALK10"},
            headers={**auth, "Idempotency-Key": str(uuid.uuid4())},
        )
    )
    rate = created(
        httpx.post(
            f"{api.url}/v1/tax-rates",
            json={"country": "NL", "percentage": 21, "inclusive": True, "display_name": "BTW"},
            headers={**auth, "Idempotency-Key": str(uuid.uuid4())},
        )
    )
    plan = created(
        httpx.post(
            f"{api.url}/v1/plans",
            json={"name": "A's", "amount": 1900, "currency": "usd", "interval": "month"},
            headers={**auth, "Idempotency-Key": str(uuid.uuid4())},
        )
    )
    fresh = new_customer(api, token_a)
    hook = created(
        httpx.post(
            f"{api.url}/v1/webhook-endpoints",
            json={"url": "https://a.example.com/hooks"},
            headers=auth,
        )
    )
    assert (account["tenant_id"], sub["tenant_id"], sub["status"]) == (
        tenant_a,
        tenant_a,
        "trialing",
    )
    return World(
        tenant=tenant_a,
        customer_id=cid,
        email=customer["email"],
        new_customer_id=fresh["id"],
        new_email=fresh["email"],
        sub_id=sub["id"],
        payment_id=payment["id"],
        refund_id=refund["id"],
        invoice_id=invoice_id,
        credit_note_id=credit_note_id,
        endpoint_id=hook["id"],
        stripe_ids=(
            account["stripe_customer_id"],
            payment["stripe_payment_intent_id"],
            refund["stripe_refund_id"],
        ),
        coupon_id=coupon["id"],
        discount_id=discount["id"],
        tax_rate_id=rate["id"],
        plan_id=plan["id"],
    )


def billing_run_invoice(api: Api, sub: dict[str, Any]) -> str:
    """An open renewal invoice of A's, as the billing run writes it (assets/billing)."""
    invoice_id = str(uuid.uuid4())
    with engine(api.settings).begin() as conn:
        conn.execute(
            text(
                "INSERT INTO billing.invoices (id, subscription_id, customer_id, tenant_id, "
                "plan_id, kind, amount, subtotal, total, amount_due, currency, period_start, "
                "period_end, billing_date, status, finalized_at) VALUES (:id, :sub, :customer, "
                ":tenant, 'basic-monthly', 'trial_conversion', 900, 900, 900, 900, 'usd', "
                ":start, :end, current_date, 'open', now())"
            ),
            {
                "id": invoice_id,
                "sub": sub["id"],
                "customer": sub["customer_id"],
                "tenant": sub["tenant_id"],
                "start": sub["current_period_end"],
                "end": datetime.fromisoformat(sub["current_period_end"]) + timedelta(days=30),
            },
        )
    return invoice_id


def customer_credit_note(api: Api, sub: dict[str, Any]) -> str:
    """A paid invoice of A's (a later period) with a credit note kept as customer credit."""
    invoice_id, note_id = uuid.uuid4(), uuid.uuid4()
    start = datetime.fromisoformat(sub["current_period_end"]) + timedelta(days=60)
    with engine(api.settings).begin() as conn:
        conn.execute(
            text(
                "INSERT INTO billing.invoices (id, subscription_id, customer_id, tenant_id, "
                "plan_id, kind, amount, subtotal, total, amount_paid, amount_due, currency, "
                "period_start, period_end, billing_date, status, finalized_at, paid_on) VALUES "
                "(:id, :sub, :customer, :tenant, 'basic-monthly', 'renewal', 900, 900, 900, "
                "900, 0, 'usd', :start, :end, current_date, 'paid', now(), current_date)"
            ),
            {
                "id": invoice_id,
                "sub": sub["id"],
                "customer": sub["customer_id"],
                "tenant": sub["tenant_id"],
                "start": start,
                "end": start + timedelta(days=30),
            },
        )
        conn.execute(
            text(
                "INSERT INTO billing.credit_notes (id, invoice_id, customer_id, tenant_id, "
                "currency, amount, reason, settlement, status, request_key, "
                "request_fingerprint, issued_at) VALUES (:id, :invoice, :customer, :tenant, "
                "'usd', 200, 'duplicate', 'customer_balance', 'issued', :key, 'walk', now())"
            ),
            {
                "id": note_id,
                "invoice": invoice_id,
                "customer": sub["customer_id"],
                "tenant": sub["tenant_id"],
                "key": f"walk|{note_id}",
            },
        )
        conn.execute(
            text(
                "INSERT INTO billing.customer_balance (id, customer_id, tenant_id, currency, "
                "amount, credit_note_id) VALUES (gen_random_uuid(), :customer, :tenant, 'usd', "
                "200, :note)"
            ),
            {"customer": sub["customer_id"], "tenant": sub["tenant_id"], "note": note_id},
        )
    return str(note_id)


# -- the walk ------------------------------------------------------------------------------


def fill() -> dict[str, Any]:
    """Valid values for required fields that name nothing of A's."""
    now = datetime.now(UTC)
    return {
        "plan_id": "pro-monthly",
        "email": f"{uuid.uuid4().hex[:12]}@example.com",
        "password": "correct horse battery staple",
        "name": "Mallory",
        "invoice_id": "inv_walk",
        "period_start": now.isoformat(),
        "period_end": (now + timedelta(days=30)).isoformat(),
        "at": now.isoformat(),
        "from_plan_id": "basic-monthly",
        "reason": "period_end",
        "date": date.today().isoformat(),
        # A charge in a batch (its customer is A's).
        "amount": 1500,
        "currency": "usd",
        "idempotency_key": f"walk-{uuid.uuid4()}",
    }


def _schema(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return _schema(doc, doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]])
    if "anyOf" in schema:  # an optional body: the object, not the null
        return _schema(doc, next(s for s in schema["anyOf"] if s.get("type") != "null"))
    return schema


def probes(
    doc: dict[str, Any], method: str, template: str, world: World, customer_id: str
) -> list[Probe]:
    """Requests aimed at A's objects: every reference the operation can carry, then each
    optional one left out (a write is kept only while it still names something of A's)."""
    op = doc["paths"][template][method.lower()]
    values = fill()
    refs, query_refs = world.refs(customer_id), world.query_refs(customer_id)
    path, query = template, {}
    optional: list[tuple[str, str]] = []
    for param in op.get("parameters", []):
        name, where = param["name"], param["in"]
        if where == "path":
            assert name in refs, f"{method} {template}: the walker knows no object for {{{name}}}"
            path = path.replace(f"{{{name}}}", refs[name])
        elif where == "query" and name in query_refs:
            query[name] = query_refs[name]
            if not param.get("required"):
                optional.append(("query", name))
        elif where == "query" and param.get("required"):
            assert name in values, f"{method} {template}: no value for query {name}"
            query[name] = values[name]
    body: dict[str, Any] | None = None
    content = op.get("requestBody", {}).get("content", {}).get("application/json")
    if content is not None:
        schema = _schema(doc, content["schema"])
        body = dict((schema.get("examples") or [{}])[0])
        for name in schema.get("properties", {}):
            if name in refs:
                body[name] = refs[name]
                if name not in schema.get("required", []):
                    optional.append(("body", name))
        for name in schema.get("required", []):
            if name not in body:
                body[name] = _value(doc, schema, name, refs, values, f"{method} {template}")
    full = Probe(method, template, path, query, body)
    variants = [full]
    for where, name in optional:
        variants.append(
            Probe(
                method,
                template,
                path,
                {k: v for k, v in query.items() if (where, k) != ("query", name)},
                None
                if body is None
                else {k: v for k, v in body.items() if (where, k) != ("body", name)},
            )
        )
    # A read is worth making as it is (a list shows what the caller sees); a write only
    # while it names something of A's, or it would just make the caller's own object.
    return [p for p in variants if method == "GET" or names_a(p, world)]


def _value(
    doc: dict[str, Any],
    schema: dict[str, Any],
    name: str,
    refs: dict[str, str],
    values: dict[str, Any],
    operation: str,
) -> Any:
    """A required field's value; a list of objects (a batch) gets one item, aimed at A's
    objects as a top-level body would be."""
    if name in values:
        return values[name]
    field = _schema(doc, schema.get("properties", {}).get(name, {}))
    items = _schema(doc, field.get("items", {}))
    assert field.get("type") == "array" and "properties" in items, (
        f"{operation}: no value for body field {name}"
    )
    item = {k: refs[k] for k in items["properties"] if k in refs}
    for required in items.get("required", []):
        if required not in item:
            enum = _schema(doc, items["properties"][required]).get("enum")
            item[required] = (
                enum[0] if enum else _value(doc, items, required, refs, values, operation)
            )
    return [item]


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def names_a(probe: Probe, world: World) -> bool:
    body = _strings(probe.body or {})
    sent = {*probe.path.split("/"), *probe.query.values(), *body}
    return bool(sent & (world.secrets() | {world.tenant}))


def operations(doc: dict[str, Any]) -> set[Operation]:
    return {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}


def walk(
    api: Api, token: str, world: World, check: Callable[[Probe, httpx.Response], None]
) -> set[Operation]:
    """Every probe of every tenant-data operation, checked; the operations walked."""
    # The whole document: the public one leaves out the internal operations walked here.
    doc = httpx.get(f"{api.url}/internal/openapi.json").json()
    every = operations(doc)
    assert set(NOT_TENANT_DATA) <= every, "NOT_TENANT_DATA names operations that are gone"
    walked: set[Operation] = set()
    with httpx.Client(base_url=api.url, timeout=30) as client:
        targets = [
            (method, template, customer)
            for method, template in sorted(every - set(NOT_TENANT_DATA))
            for customer in (world.customer_id, world.new_customer_id)
        ]
        for method, template, customer in targets:
            for probe in probes(doc, method, template, world, customer):
                response = client.request(
                    probe.method,
                    probe.path,
                    params=probe.query,
                    json=probe.body,
                    headers={**bearer(token), "Idempotency-Key": str(uuid.uuid4())},
                )
                leaked = {s for s in world.secrets() if s in response.text} - {
                    s for s in world.secrets() if s in probe.sent()
                }
                assert not leaked, f"{probe}: the answer names {leaked}: {response.text}"
                check(probe, response)
                walked.add(probe.operation)
    assert walked == every - set(NOT_TENANT_DATA), "an operation had nothing to aim at A"
    return walked


def refused(*problems: str, lists: bool = True) -> Callable[[Probe, httpx.Response], None]:
    """A problem of one of these types (404 for not-found, else 403); a list (when
    `lists`) answers 200 with the caller's own objects instead."""

    def check(probe: Probe, response: httpx.Response) -> None:
        lacks_scope = MISSING_SCOPE in problems and response.status_code == 403
        if lists and probe.operation in LISTS and not lacks_scope:
            assert response.status_code == 200, f"{probe}: {response.text}"
            return
        assert response.headers["content-type"].startswith("application/problem+json"), (
            f"{probe}: {response.status_code} {response.text}"
        )
        kind = response.json()["type"]
        assert kind in problems, f"{probe}: {response.status_code} {response.text}"
        assert response.status_code == (404 if kind == NOT_FOUND else 403), response.text

    return check


# -- nothing changes -----------------------------------------------------------------------

TABLES_OF = ("customer", "subscription", "payment", "registration", "billing", "webhooks")


def _counts(db: Engine) -> dict[str, int]:
    with db.connect() as conn:
        tables = conn.execute(
            text(
                "SELECT table_schema || '.' || table_name FROM information_schema.tables "
                "WHERE table_schema = ANY(:schemas) AND table_type = 'BASE TABLE'"
            ),
            {"schemas": list(TABLES_OF)},
        ).scalars()
        names = sorted({*tables, "auth.users"})
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in names}


def _rows(db: Engine, world: World) -> dict[str, list[dict[str, Any]]]:
    """Every row of A's customers, subscriptions, accounts, payments and refunds."""
    queries = {
        "customers": "SELECT * FROM customer.customers WHERE id = ANY(:c) ORDER BY id",
        "subscriptions": "SELECT * FROM subscription.subscriptions WHERE customer_id = ANY(:c) "
        "ORDER BY id",
        "accounts": "SELECT * FROM payment.accounts WHERE customer_id = ANY(:s) "
        "ORDER BY customer_id",
        "payments": "SELECT * FROM payment.payments WHERE customer_id = ANY(:s) ORDER BY id",
        "refunds": "SELECT r.* FROM payment.refunds r JOIN payment.payments p "
        "ON p.id = r.payment_id WHERE p.customer_id = ANY(:s) ORDER BY r.id",
        "invoices": "SELECT * FROM billing.invoices WHERE customer_id = ANY(:s) ORDER BY id",
        "coupons": "SELECT * FROM billing.coupons WHERE tenant_id = :t ORDER BY id",
        "discounts": "SELECT * FROM billing.discounts WHERE customer_id = ANY(:s) ORDER BY id",
        "tax_rates": "SELECT * FROM billing.tax_rates WHERE tenant_id = :t ORDER BY id",
        "attempts": "SELECT a.* FROM billing.attempts a JOIN billing.invoices i "
        "ON i.id = a.invoice_id WHERE i.customer_id = ANY(:s) ORDER BY a.invoice_id, a.attempt",
        "credit_notes": "SELECT * FROM billing.credit_notes WHERE customer_id = ANY(:s) "
        "ORDER BY id",
        "balance": "SELECT * FROM billing.customer_balance WHERE customer_id = ANY(:s) ORDER BY id",
        "plans": "SELECT * FROM subscription.plans WHERE tenant_id = :t ORDER BY id",
        "plan_prices": "SELECT v.* FROM subscription.plan_prices v JOIN subscription.plans p "
        "ON p.id = v.plan_id WHERE p.tenant_id = :t ORDER BY v.plan_id, v.version",
    }
    ids = [uuid.UUID(world.customer_id), uuid.UUID(world.new_customer_id)]
    params = {"c": ids, "s": [str(i) for i in ids], "t": world.tenant}
    with db.connect() as conn:
        return {
            name: [dict(r) for r in conn.execute(text(sql), params).mappings()]
            for name, sql in queries.items()
        }


def _stripe_counts(api: Api) -> dict[str, int]:
    stripe = stripe_client(api.settings)
    return {
        name: sum(
            1 for _ in getattr(stripe.v1, name).list(params={"limit": 100}).auto_paging_iter()
        )
        for name in STRIPE_LISTS
    }


@contextmanager
def nothing_changes(api: Api, world: World) -> Iterator[None]:
    db = engine(api.settings)
    before = (_counts(db), _rows(db, world), _stripe_counts(api))
    yield
    after = (_counts(db), _rows(db, world), _stripe_counts(api))
    assert after[0] == before[0], "rows were added or removed"
    assert after[1] == before[1], "tenant A's rows changed"
    assert after[2] == before[2], "Stripe objects were made"


# -- the tests -----------------------------------------------------------------------------


def test_another_tenant_is_refused_on_every_operation(api: Api, world: World, token_b: str) -> None:
    with nothing_changes(api, world):
        walked = walk(api, token_b, world, refused(NOT_FOUND, MISSING_SCOPE, OTHER_TENANT))
    assert ("POST", "/v1/subscriptions") in walked and ("POST", "/v1/accounts") in walked


def test_a_user_is_refused_on_every_other_customer_of_its_tenant(
    api: Api, world: World, internal: str
) -> None:
    own = new_customer(api, internal, world.tenant)
    password = "correct horse battery staple"
    login = {
        "email": own["email"],
        "password": password,
        "customer_id": own["id"],
        "tenant_id": world.tenant,
    }
    created(httpx.post(f"{api.url}/v1/users", json=login, headers=bearer(internal)))
    # Every scope a customer's token can hold: self-service writes are walked too.
    token = end_user_token(api, world.tenant, own["email"], password, " ".join(USER_SCOPES))

    with nothing_changes(api, world):
        walk(api, token, world, refused(NOT_FOUND, MISSING_SCOPE))
    listed = httpx.get(f"{api.url}/v1/customers", headers=bearer(token)).json()["data"]
    assert [c["id"] for c in listed] == [own["id"]]


def test_operator_endpoints_refuse_partners_and_users(api: Api, token_b: str) -> None:
    for method, template in OPERATOR_ONLY:
        path = template.format(client_id="tenant-b-client")
        answer = httpx.request(
            method, f"{api.url}{path}", params={"date": "2026-01-01"}, headers=bearer(token_b)
        )
        assert answer.status_code == 403, (method, path, answer.text)
        assert answer.json()["type"] == MISSING_SCOPE


def test_a_client_without_a_tenant_gets_no_tenant_data(
    api: Api, world: World, internal: str, issue_token: Callable[..., str]
) -> None:
    # A customer of no tenant, as another unbound client could make one before this rule.
    orphan = new_customer(api, internal)
    assert orphan["tenant_id"] is None
    unbound = issue_token(PARTNER_SCOPES)
    for path in ("/v1/customers", f"/v1/customers/{orphan['id']}"):
        answer = httpx.get(f"{api.url}{path}", headers=bearer(unbound))
        assert orphan["id"] not in answer.text.replace(path, ""), answer.text
        assert (answer.status_code, answer.json()["type"]) == (403, TENANT_REQUIRED)
    # Nor may it make customers of its own: they would be shared with every unbound client.
    own = httpx.post(
        f"{api.url}/v1/customers",
        json={"email": f"{uuid.uuid4().hex[:12]}@example.com", "name": "X"},
        headers=bearer(unbound),
    )
    assert (own.status_code, own.json()["type"]) == (403, TENANT_REQUIRED)

    kinds: list[str] = []

    def check(probe: Probe, response: httpx.Response) -> None:
        refused(TENANT_REQUIRED, MISSING_SCOPE, lists=False)(probe, response)
        kinds.append(response.json()["type"])

    with nothing_changes(api, world):
        walk(api, unbound, world, check)
    assert TENANT_REQUIRED in kinds


def _subscriptions_of(api: Api, customer_id: str) -> list[dict[str, Any]]:
    with engine(api.settings).connect() as conn:
        rows = conn.execute(
            text(
                "SELECT id, tenant_id, status FROM subscription.subscriptions "
                "WHERE customer_id = :c"
            ),
            {"c": customer_id},
        ).mappings()
        return [dict(r) for r in rows]


def test_another_tenant_cannot_subscribe_a_customer_even_after_it_cancels(
    api: Api, token_a: str, token_b: str, tenant_a: str
) -> None:
    customer = new_customer(api, token_a)
    sub = created(subscribe(api, token_a, customer["id"]))

    live = subscribe(api, token_b, customer["id"])
    assert live.status_code == 404, live.text
    assert sub["id"] not in live.text
    canceled = httpx.post(
        f"{api.url}/v1/subscriptions/{sub['id']}/cancel",
        json={"at_period_end": False},
        headers=bearer(token_a),
    )
    assert created(canceled)["status"] == "canceled"
    after_cancel = subscribe(api, token_b, customer["id"])
    assert after_cancel.status_code == 404, after_cancel.text
    assert sub["id"] not in after_cancel.text
    assert [s["id"] for s in _subscriptions_of(api, customer["id"])] == [uuid.UUID(sub["id"])]

    again = created(subscribe(api, token_a, customer["id"]))  # A is not blocked
    assert again["tenant_id"] == tenant_a
    conflict = subscribe(api, token_a, customer["id"])
    assert conflict.status_code == 409
    assert conflict.json()["subscription_id"] == again["id"]  # its own: named


def test_an_internal_caller_subscribes_only_in_the_customers_tenant(
    api: Api, token_a: str, internal: str, tenant_a: str
) -> None:
    customer = new_customer(api, token_a)
    elsewhere = subscribe(api, internal, customer["id"], tenant_id="some-other-tenant")
    assert elsewhere.status_code == 404, elsewhere.text
    assert _subscriptions_of(api, customer["id"]) == []
    made = created(subscribe(api, internal, customer["id"]))
    assert made["tenant_id"] == tenant_a  # the customer's, not the caller's (none)


def test_a_customer_that_exists_nowhere_gets_no_subscription(
    api: Api, token_a: str, internal: str
) -> None:
    nobody = str(uuid.uuid4())
    for token in (token_a, internal):
        answer = subscribe(api, token, nobody)
        assert answer.status_code == 404, answer.text
        assert answer.json()["type"] == NOT_FOUND
    assert _subscriptions_of(api, nobody) == []


def test_a_deleted_customer_cannot_be_subscribed(api: Api, token_a: str) -> None:
    customer = new_customer(api, token_a)
    gone = httpx.delete(f"{api.url}/v1/customers/{customer['id']}", headers=bearer(token_a))
    assert gone.status_code == 204
    answer = subscribe(api, token_a, customer["id"])
    assert answer.status_code == 404, answer.text
    assert _subscriptions_of(api, customer["id"]) == []


def test_not_yours_reads_exactly_like_absent(api: Api, world: World, token_b: str) -> None:
    """The same status and body, but for the id the caller sent itself."""
    for method, template, theirs in (
        ("GET", "/v1/customers/{}", world.customer_id),
        ("GET", "/v1/customers/{}/subscriptions", world.customer_id),
        ("GET", "/v1/subscriptions/{}", world.sub_id),
        ("POST", "/v1/subscriptions/{}/pause", world.sub_id),
        ("GET", "/v1/payments/{}", world.payment_id),
        ("POST", "/v1/payments/{}/refunds", world.payment_id),
        ("GET", "/v1/invoices/{}", world.invoice_id),
        ("GET", "/v1/credit_notes/{}", world.credit_note_id),
        ("GET", "/v1/customers/{}/balance", world.customer_id),
        ("GET", "/v1/webhook-endpoints/{}", world.endpoint_id),
        ("POST", "/v1/webhook-endpoints/{}/rotate-secret", world.endpoint_id),
    ):
        absent = str(uuid.uuid4())
        answers = [
            httpx.request(
                method,
                api.url + template.format(ident),
                headers={**bearer(token_b), "Idempotency-Key": str(uuid.uuid4())},
            )
            for ident in (theirs, absent)
        ]
        assert [a.status_code for a in answers] == [404, 404], [a.text for a in answers]
        bodies = [
            json.loads(a.text.replace(i, "<id>"))
            for a, i in zip(answers, (theirs, absent), strict=True)
        ]
        assert bodies[0] == bodies[1], template


def test_without_the_customer_service_nothing_is_subscribed_or_opened(
    api: Api, token_a: str, tenant_a: str, served_api: Callable[..., ServedApi]
) -> None:
    """Unable to ask whose customer it is, subscription and payment refuse (503, retry
    later) and write nothing: the check fails closed."""
    customer = new_customer(api, token_a)
    served = served_api(CUSTOMER_SERVICE_URL=f"http://127.0.0.1:{free_port()}")
    client_id, secret = register_client(api.settings, PARTNER_SCOPES, tenant_a, "walk")
    auth = bearer(client_token(served.url, client_id, secret, PARTNER_SCOPES))
    db = engine(api.settings)
    before = _counts(db)

    for path, body in (
        ("/v1/subscriptions", {"customer_id": customer["id"], "plan_id": "basic-monthly"}),
        ("/v1/accounts", {"customer_id": customer["id"], "email": customer["email"]}),
    ):
        answer = httpx.post(f"{served.url}{path}", json=body, headers=auth, timeout=30)
        assert answer.status_code == 503, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.headers["retry-after"]
    assert _counts(db) == before
    assert _subscriptions_of(api, customer["id"]) == []
