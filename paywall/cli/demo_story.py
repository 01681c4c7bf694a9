"""The demo's story: four months of a partner's customers, played in order.

Three cohorts sign up on the 10th of each of the last three months and one today; a
trial whose card declines at conversion goes through dunning and is lost; a customer
downgrades and another cancels at period end; one upgrades today. The first customer signs
up with the tenant's coupon from California (its invoices discounted, sales tax added), the
second from Germany (VAT inside the price); today a credit note refunds part of the first
customer's paid invoice (demo_billing.py). Every billing day in
between runs through Dagster (demo_dagster.py) as the schedule would have run it. Each step
is moved to its simulated moment (demo_time.py) before anything is relayed, so the lake,
the warehouse and the MRR chart see four months.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from dateutil.relativedelta import relativedelta
from rich.console import Console
from rich.progress import Progress

from paywall import db
from paywall.cli import demo_billing as extras
from paywall.cli import demo_time as clock
from paywall.cli.demo_dagster import DemoDagster
from paywall.clients import DECLINED_CARD, GOOD_CARD
from paywall.settings import Settings

PLANS = ["basic-monthly", "pro-monthly", "pro-yearly", "team-monthly"]
MONTHS_BACK = (3, 2, 1, 0)


@dataclass
class Signup:
    cohort: int  # months back
    plan_id: str
    trial: bool
    declined: bool
    late: bool = False  # signs up on the month's last day, and upgrades today
    coupon: str | None = None
    address: dict[str, str] | None = None
    answer: dict[str, Any] = field(default_factory=dict)


@dataclass
class StoryOutcome:
    signups: Counter[str] = field(default_factory=Counter)
    changes: Counter[str] = field(default_factory=Counter)
    billing_days: list[date] = field(default_factory=list)
    billing: Counter[str] = field(default_factory=Counter)
    billing_setup: list[str] = field(default_factory=list)
    credit_note: str = ""


def cast(count: int) -> list[Signup]:
    """Who signs up when: the signups spread over the cohorts, oldest first; the second
    cohort's first signup is a trial whose card declines when the trial converts."""
    cast_: list[Signup] = []
    for i in range(count):
        cohort = MONTHS_BACK[i * len(MONTHS_BACK) // count]
        first_of_cohort = not cast_ or cast_[-1].cohort != cohort
        declined = cohort == 2 and first_of_cohort
        cast_.append(Signup(cohort, PLANS[i % len(PLANS)], declined or i % 4 == 1, declined))
    # The oldest cohort's first customer renews (and cancels before its coupon runs out, so
    # today's MRR holds no discount); its second converts a trial and stays.
    cast_[0].coupon, cast_[0].address = str(extras.COUPON["code"]), extras.US_CA
    if len(cast_) > 1:
        cast_[1].address = extras.DE
    # Last month's last signup comes on its last day on the basic plan, so that today is
    # still in its first period: its upgrade today is expansion (billing makes a proration
    # invoice only for a period without one, and a renewed period has its renewal's).
    last = [p for p in cast_ if p.cohort == 1]
    if len(last) > 1:
        last[-1].plan_id, last[-1].trial, last[-1].late = "basic-monthly", False, True
    return cast_


class Story:
    def __init__(
        self, base: str, settings: Settings, token: str, dagster: DemoDagster, console: Console
    ) -> None:
        self.base = base
        self.settings = settings
        self.engine = db.engine(settings)
        self.headers = {"Authorization": f"Bearer {token}"}
        self.dagster = dagster
        self.console = console
        self.outcome = StoryOutcome()
        self.last_billed: date | None = None
        self.people: list[Signup] = []

    def card(self, number: str) -> str:
        from paywall.clients import make_test_card

        return make_test_card(self.settings, number)

    def post(self, http: httpx.Client, path: str, body: dict[str, Any]) -> httpx.Response:
        # Every change carries a key, as a partner's backend sends it: a retry is safe.
        headers = {**self.headers, "Idempotency-Key": str(uuid.uuid4())}
        return http.post(f"{self.base}{path}", json=body, headers=headers)

    def sign_up(self, http: httpx.Client, who: Signup, n: int) -> None:
        body = {
            "email": f"demo-{uuid.uuid4().hex[:8]}@example.com",
            "password": "demo password 1234",
            "name": f"Demo Customer {n}",
            "phone": "+14155550100",
            "plan_id": who.plan_id,
            "trial": who.trial,
            "marketing_opt_in": n % 2 == 0,
            "payment_method_id": self.card(DECLINED_CARD if who.declined else GOOD_CARD),
            **({"coupon": who.coupon} if who.coupon else {}),
            **({"address": who.address} if who.address else {}),
        }
        resp = self.post(http, "/v1/registrations", body)
        if resp.status_code == 201:
            who.answer = resp.json()
            self.outcome.signups[resp.json()["subscription_status"]] += 1
        else:
            self.outcome.signups[f"refused ({resp.status_code})"] += 1

    def bill_until(self, before: date) -> None:
        """Every billing day before `before` with something due, as the schedule runs them."""
        while day := clock.next_billing_day(self.engine, self.last_billed, before):
            window = clock.Window.open()
            self.dagster.billing_day(day)
            clock.move_events(self.engine, window, clock.at(day, 2), signup=False)
            self.outcome.billing_days.append(day)
            self.last_billed = day

    def change(
        self, http: httpx.Client, who: Signup | None, what: str, body: dict[str, Any]
    ) -> None:
        if who is None or not who.answer:
            return
        sub = who.answer["subscription_id"]
        path = "cancel" if what == "cancel at period end" else "change-plan"
        resp = self.post(http, f"/v1/subscriptions/{sub}/{path}", body)
        refused = "" if resp.is_success else f" ({resp.json().get('detail', '')})"
        self.outcome.changes[f"{what} {resp.status_code}{refused}"] += 1

    def play(self, count: int) -> StoryOutcome:
        today = datetime.now(UTC).date()
        people = self.people = cast(count)
        with (
            Progress(console=self.console, transient=True) as bar,
            httpx.Client(timeout=60) as http,
        ):
            task = bar.add_task("four months of signups and billing days", total=count)
            self.outcome.billing_setup = extras.set_up(http, self.base, self.headers)
            for months_back in MONTHS_BACK:
                cohort = [p for p in people if p.cohort == months_back and not p.late]
                day = today.replace(day=10) - relativedelta(months=months_back)
                # The day's billing (02:00) before its signups (10:00); today's not yet due.
                self.bill_until(day + timedelta(days=1) if months_back else today)
                window = clock.Window.open()
                for who in cohort:
                    self.sign_up(http, who, people.index(who) + 1)
                    bar.advance(task)
                if months_back:
                    clock.move_signups(self.engine, window, clock.at(day, 10))
                if months_back == 2:
                    changed = day + timedelta(days=5)
                    self.bill_until(changed + timedelta(days=1))
                    self.first_changes(http, people, changed)
                if months_back == 1:
                    late = [p for p in people if p.late]
                    self.late_signups(http, late, people, today)
                    bar.advance(task, len(late))
            # Today, live: an upgrade, charged now (a proration invoice).
            upgrading = next((p for p in people if p.late), None)
            self.change(http, upgrading, "upgrade", {"plan_id": "pro-monthly"})
            first = people[0].answer.get("customer_id")
            self.outcome.credit_note = (
                extras.credit_note(http, self.base, self.headers, self.engine, first)
                if first
                else "first signup refused"
            )
        return self.outcome

    def late_signups(
        self, http: httpx.Client, late: list[Signup], people: list[Signup], today: date
    ) -> None:
        """Last month's last day: the signups whose first period reaches past today."""
        day = today.replace(day=1) - timedelta(days=1)
        self.bill_until(day + timedelta(days=1))
        window = clock.Window.open()
        for who in late:
            self.sign_up(http, who, people.index(who) + 1)
        clock.move_signups(self.engine, window, clock.at(day, 10))

    def first_changes(self, http: httpx.Client, people: list[Signup], day: date) -> None:
        """Two months back: the oldest cohort's monthly customers downgrade (applied at
        their period's end) and cancel at period end."""
        oldest = [p for p in people if p.cohort == 3 and not p.declined]
        window = clock.Window.open()
        self.change(
            http,
            next((p for p in oldest if p.plan_id in ("pro-monthly", "team-monthly")), None),
            "downgrade",
            {"plan_id": "basic-monthly"},
        )
        self.change(
            http,
            next((p for p in oldest if p.plan_id == "basic-monthly"), None),
            "cancel at period end",
            {"at_period_end": True},
        )
        clock.move_events(self.engine, window, clock.at(day, 12), signup=False)
