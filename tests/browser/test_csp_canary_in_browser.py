"""The watch every browser test keeps (tests/browser/conftest.py) hears a real violation."""

from __future__ import annotations

import pytest

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.urls("tests.project.urls"),
]


def test_the_violation_listener_catches_the_canary(page, live_server):
    page.goto(live_server.url + "/test/csp-canary/")
    page.wait_for_load_state("load")
    assert page.title() == "canary"  # the inline script did not run
    [violation] = page.violations
    assert violation["page"] == "/test/csp-canary/"
    assert violation["directive"] == "script-src-elem"
    assert violation["blocked"] == "inline"
    assert any("Content Security Policy" in line for line in page.console_errors)
    # Seen and expected: the fixture's own checks must not fail on them.
    page.violations.clear()
    page.console_errors.clear()
