"""The seeded header rules in a real browser: forms still post, pages work, inline code is held."""

from __future__ import annotations

import pytest

from policies import services
from policies.headers import rule_sets
from tests.browser.conftest import allow_refusals, csp_violations
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def log_in(page, live_server, username: str, path: str = "/accounts/login/") -> None:
    page.goto(live_server.url + path)
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_load_state()


def test_the_login_form_posts_under_the_seeded_referrer_policy(page, live_server, owner):
    log_in(page, live_server, "owner")
    assert page.url == live_server.url + "/"
    assert "Signed in as owner" in page.content()
    assert csp_violations(page) == []


def test_no_referrer_would_break_every_form_post(page, live_server, owner, actor):
    """Why the seeded rule says same-origin: with no-referrer the browser sends Origin: null."""
    services.rule_create(
        data={
            "name": "no-referrer",
            "path": "/accounts/",
            "priority": 500,
            "referrer_policy": "no-referrer",
        },
        actor=actor,
        reason="demonstrate",
        rollback_note="delete it",
    )
    rule_sets.clear()
    allow_refusals(page, "/accounts/login/")  # the 403 itself
    log_in(page, live_server, "owner")
    assert page.get_by_role("heading").inner_text() == "This form could not be accepted"
    assert page.url.endswith("/accounts/login/")


def test_admin_pages_raise_no_csp_violation(page, live_server, django_user_model):
    django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    log_in(page, live_server, "root", "/admin/login/")
    for path in (
        "/admin/",
        "/admin/policies/uploadpolicy/",
        "/admin/policies/uploadpolicy/1/change/",
        "/admin/policies/headerrule/?preview_path=/admin/",
        "/admin/policies/auditentry/",
    ):
        page.goto(live_server.url + path)
        assert page.locator("#content").count() == 1, path
    assert csp_violations(page) == []


@pytest.mark.urls("tests.headers.urls")
def test_a_nonced_script_runs_and_an_injected_one_does_not(page, live_server):
    page.goto(live_server.url + "/t/browser-nonce/")
    assert page.evaluate("window.nonced") is True
    assert page.evaluate("window.injected") is None
    assert [v["directive"] for v in page.violations] == ["script-src-elem"]
    assert any("inline script" in m for m in csp_violations(page))
    page.violations.clear()  # the injected script's, expected
    page.console_errors.clear()
