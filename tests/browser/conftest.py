"""Headless Chromium for tests that look at pages as a person would: Debian's `chromium`
(`./dev test` installs it), driven by Playwright from PyPI. Playwright's own browser
downloads are never used: the browser is the system's, at CHROMIUM.

A missing browser fails the test (one line naming the package), never skips it: a skipped
page test would pass CI without anyone looking at the page.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Route, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


# Per module, not per session: Playwright's sync API runs an event loop in the main thread
# while it is up, and a later test's asyncio.run() would refuse to start beside it.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium package (./dev test does)",
            pytrace=False,
        )
    # Chromium refuses to start its sandbox as root (CI and these machines run as root).
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=args
        )
        try:
            yield chromium
        finally:
            chromium.close()


class OfflinePage:
    """A page that may reach loopback only: every other request is aborted and listed, so a
    page that needs a CDN (or phones home) shows up in `blocked`."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.blocked: list[str] = []
        page.route("**/*", self._route)

    def _route(self, route: Route) -> None:
        url = route.request.url
        scheme = urlsplit(url).scheme
        if scheme in {"data", "blob"} or urlsplit(url).hostname in LOOPBACK:
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort("blockedbyclient")


@pytest.fixture
def offline_page(browser: Browser) -> Iterator[OfflinePage]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        yield OfflinePage(context.new_page())
    finally:
        context.close()


def screenshot(page: Page, path: Path) -> Path:
    """Save the whole page as a PNG and say where (pytest -s shows it)."""
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path
