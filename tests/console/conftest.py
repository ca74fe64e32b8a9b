"""Playwright against the live server, with the Debian chromium (playwright never downloads a browser)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import LiveServer

CHROMIUM = Path("/usr/bin/chromium")
# The machine is shared and writes embed text on its CPUs: give the page time before calling it wrong.
expect.set_options(timeout=30_000)


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """Our own Playwright for this package only (pytest-playwright's is session-wide): its event loop must be
    gone before the asyncio tests that run after these."""
    if not CHROMIUM.exists():
        pytest.skip("the console tests need the Debian chromium package at /usr/bin/chromium "
                    "(scripts/dev.sh installs it: apt-get install -y chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield launched
        launched.close()


@pytest.fixture
def console(browser: Browser, live_server: LiveServer) -> Iterator[Page]:
    """A fresh browser context (so a fresh sessionStorage) whose page fails the test on any script error."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # A refused request is logged by the browser as "Failed to load resource"; the tests assert those themselves.
    page.on("console", lambda msg: errors.append(msg.text)
            if msg.type == "error" and not msg.text.startswith("Failed to load resource") else None)
    yield page
    context.close()
    assert errors == []


def sign_in(page: Page, key: str) -> None:
    page.goto("/console")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#nav")).to_be_visible()
