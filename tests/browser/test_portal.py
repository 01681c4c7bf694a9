"""The customer portal in headless Chromium, as a customer uses it: sign in through the
tenant's login page, upgrade the plan, replace the card and download an invoice. Every
change is then read back through the partner's API, not from the page."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.browser.conftest import OfflinePage, screenshot
from tests.conftest import Api
from tests.portal_setup import PASSWORD, new_card, new_tenant, signed_up

pytestmark = pytest.mark.integration


def test_a_customer_signs_in_upgrades_replaces_the_card_and_downloads_an_invoice(
    api: Api, issue_token: Callable[..., str], offline_page: OfflinePage, tmp_path: Path
) -> None:
    customer = signed_up(api, issue_token, new_tenant(api))
    page = offline_page.page

    page.goto(f"{api.url}/portal/login?tenant={customer.tenant}")
    page.fill("input[name=email]", customer.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{api.url}/portal/")
    assert page.locator("[data-test=plan]").inner_text() == "Pro"
    assert page.locator("[data-test=status]").inner_text() == "active"

    page.select_option("#plan_id", "team-monthly")
    page.click("text=Change plan >> nth=-1")
    page.wait_for_url(f"{api.url}/portal/")
    assert "changes to team-monthly now" in page.locator("[role=status]").inner_text()
    assert page.locator("[data-test=plan]").inner_text() == "Team"
    sub = customer.get(api, f"/v1/subscriptions/{customer.subscription_id}").json()
    assert sub["plan_id"] == "team-monthly"
    invoices = customer.get(api, f"/v1/invoices?subscription_id={sub['id']}").json()["data"]
    upgrade = [i for i in invoices if i["previous_plan_id"] == "pro-monthly"]
    assert [i["status"] for i in upgrade] == ["paid"], invoices  # charged, once

    assert page.locator("[data-test=card]").inner_text() == "Visa ending in 4242, expires 12/2030"
    card = new_card(api, "4000056655665556")
    page.fill("#payment_method_id", card)
    page.click("text=Update card")
    page.wait_for_url(f"{api.url}/portal/")
    assert "card is updated" in page.locator("[role=status]").inner_text()
    shown = page.locator("[data-test=card]").inner_text()
    assert shown == "Visa ending in 5556, expires 12/2030"
    account = customer.get(api, f"/v1/accounts/{customer.customer_id}").json()
    assert account["default_payment_method"] == card
    assert account["card"] == {
        "brand": "visa",
        "last4": "5556",
        "exp_month": 12,
        "exp_year": 2030,
    }

    shot = screenshot(page, tmp_path / "portal.png")
    assert shot.stat().st_size > 10_000
    with page.expect_download() as download:
        page.click(f"a[href='/portal/invoices/{upgrade[0]['id']}.pdf']")
    pdf = Path(download.value.path()).read_bytes()
    assert pdf.startswith(b"%PDF-")
    assert offline_page.blocked == []  # nothing but loopback was even asked for
