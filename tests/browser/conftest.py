"""A real browser: Debian's Chromium driven by Playwright (never Playwright's own download)."""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from pathlib import Path

import pytest

from policies.headers import rule_sets

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


@pytest.fixture(autouse=True)
def fresh_rules():
    """Header rules as the test's database has them: each test's rules, not a cached earlier
    test's (the live server shares this process's rule cache)."""
    rule_sets.clear()
    yield
    rule_sets.clear()


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


# Runs in every document before its own scripts (Playwright injects it, so the page's CSP does not
# apply to it) and hands each violation to Python, where it survives navigations.
VIOLATION_LISTENER = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.portcullisViolation({
    page: document.location.pathname,
    directive: event.effectiveDirective,
    blocked: event.blockedURI,
    sample: event.sample,
  });
});
"""
# What Chromium logs when a request it made answers 4xx: expected where a test provokes a
# refusal (allow_refusals), an error anywhere else.
FAILED_RESOURCE = re.compile(
    r"Failed to load resource: the server responded with a status of 4\d\d"
)
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


@contextmanager
def watched_page(browser, *, javascript: bool = True):
    """A page in a fresh browser context, watched: every CSP violation and every console or
    script error fails the test at the end, unless the test expected it (`expected_errors`,
    `allow_refusals`). With JavaScript on, the `securitypolicyviolation` listener reports each
    violation (`page.violations`); with it off, Chromium's console line for each one still fails
    the test. `page.console_messages` keeps every console line."""
    context = browser.new_context(java_script_enabled=javascript)
    new_page = context.new_page()
    new_page.console_messages = []
    new_page.console_errors = []
    new_page.violations = []
    new_page.expected_errors = []
    if javascript:
        context.expose_function(
            "portcullisViolation", lambda report: new_page.violations.append(report)
        )
        context.add_init_script(VIOLATION_LISTENER)
    new_page.on("console", lambda message: _console(new_page, message))
    new_page.on("pageerror", lambda error: new_page.console_errors.append(f"uncaught: {error}"))
    try:
        yield new_page
    finally:
        context.close()
    assert new_page.violations == [], "CSP violations"
    unexpected = [
        line
        for line in new_page.console_errors
        if not any(pattern.search(line) for pattern in new_page.expected_errors)
    ]
    assert unexpected == [], "console errors"


@pytest.fixture
def page(browser):
    with watched_page(browser) as new_page:
        yield new_page


def _console(page, message) -> None:
    page.console_messages.append(message.text)
    if message.type == "error":
        # With the address it concerns, so an expected refusal can be told from a missing file.
        page.console_errors.append(f"{message.text} at {message.location.get('url', '')}")


def allow_refusals(page, path: str) -> None:
    """This test provokes refusals from `path` (e.g. "/upload/"): Chromium's "Failed to load
    resource ... 4xx" lines for that address are expected; any other console error, a 4xx from
    another address included, still fails the test."""
    page.expected_errors.append(
        re.compile(f"{FAILED_RESOURCE.pattern}.* at [^ ]*{re.escape(path)}")
    )


def csp_violations(page) -> list[str]:
    return [m for m in page.console_messages if "Content Security Policy" in m]


def screenshot(page, name: str) -> None:
    """With SCREENSHOTS=1, a full-page screenshot in var/screenshots/ (look at them before
    calling a page done)."""
    if os.environ.get("SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
