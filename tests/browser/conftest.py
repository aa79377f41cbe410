"""A real browser: Debian's Chromium driven by Playwright (never Playwright's own download)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run the browser tests: install Debian's chromium package")
        pytest.skip("Debian's Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; Django must still allow ORM use.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh browser context; console messages collected in `page.console_messages`."""
    context = browser.new_context()
    new_page = context.new_page()
    new_page.console_messages = []
    new_page.on("console", lambda message: new_page.console_messages.append(message.text))
    yield new_page
    context.close()


def csp_violations(page) -> list[str]:
    return [m for m in page.console_messages if "Content Security Policy" in m]
