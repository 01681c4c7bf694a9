"""A service's /docs page in headless Chromium with no network but loopback: Swagger UI's
scripts and styles come from the installed fastapi-offline package, not a CDN."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from paywall.stack.process import free_port
from tests.browser.conftest import OfflinePage, screenshot
from transactional.common.serving import serving
from transactional.services import service_app


@pytest.fixture
def subscription_service() -> Iterator[str]:
    """The subscription service alone, as its container serves it (docs need no database)."""
    with serving(service_app("subscription"), "127.0.0.1", free_port()) as url:
        yield url


def test_swagger_ui_renders_offline(
    subscription_service: str, offline_page: OfflinePage, tmp_path: Path
) -> None:
    page = offline_page.page
    page.goto(f"{subscription_service}/docs")
    # Swagger UI builds the page from /openapi.json in the browser: its operations appear
    # only once its scripts ran and fetched the document.
    page.locator(".swagger-ui .opblock").first.wait_for(state="visible", timeout=30_000)
    assert page.locator(".swagger-ui .info .title").inner_text().strip()
    assert page.locator(".opblock-summary-path", has_text="/v1/subscriptions").count() > 0
    assert page.locator("button.authorize").is_visible()
    shot = screenshot(page, tmp_path / "docs.png")
    assert shot.stat().st_size > 10_000
    assert offline_page.blocked == []  # nothing but loopback was even asked for
