"""The policies admin in a real browser, under the seeded strict CSP: a change with its reason,
its diff in the history, rolling it back; what a change did to uploads; the rejections dashboard;
the header preview on the rule list."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from policies import services
from policies.models import MIB, AuditEntry, CspReport, UploadPolicy
from tests.browser.conftest import screenshot
from tests.browser.test_headers_in_browser import log_in
from tests.conftest import PASSWORD
from uploads.models import UploadEvent

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def admin_page(page, live_server, django_user_model):
    """The page, signed in to the admin as a superuser, a desktop window wide."""
    django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, live_server, "root", "/admin/login/")
    return page


def event(slug: str, code: str, at: datetime) -> UploadEvent:
    made = UploadEvent.objects.create(policy_slug=slug, code=code)
    UploadEvent.objects.filter(pk=made.pk).update(created_at=at)
    return made


def test_an_admin_lowers_a_limit_sees_the_diff_and_rolls_it_back(admin_page, live_server):
    page = admin_page
    policy = UploadPolicy.objects.get(slug="default")
    page.goto(live_server.url + "/admin/policies/uploadpolicy/")
    page.get_by_role("link", name="default", exact=True).click()
    size = page.locator("output[for=id_max_file_size_bytes]")
    assert size.inner_text() == f"10 MiB ({10 * MIB} bytes)"
    assert page.locator("fieldset.policies-why h2").inner_text().startswith("Why")
    screenshot(page, "admin-policy-change-form")

    page.fill("#id_max_file_size_bytes", str(4 * MIB))
    assert size.inner_text() == f"4 MiB ({4 * MIB} bytes)"  # follows the typing
    page.fill("#id_reason", "Phones send 4 MiB at most.")
    page.fill("#id_rollback_note", "Roll back this entry if app uploads start failing.")
    page.click("input[name=_save]")
    page.wait_for_url("**/admin/policies/uploadpolicy/")
    policy.refresh_from_db()
    assert policy.max_file_size_bytes == 4 * MIB

    page.locator("#result_list").get_by_role("link", name="default", exact=True).click()
    page.get_by_role("link", name="History").click()
    latest = page.locator(".policies-entry").first
    assert "Phones send 4 MiB at most." in latest.inner_text()
    row = latest.locator(".policies-diff tbody tr")
    assert row.locator(".policies-before del").inner_text() == f"10 MiB ({10 * MIB} bytes)"
    assert row.locator(".policies-after ins").inner_text() == f"4 MiB ({4 * MIB} bytes)"
    assert "→" in row.inner_text()
    old_colour = row.locator("del").evaluate("e => getComputedStyle(e).backgroundColor")
    new_colour = row.locator("ins").evaluate("e => getComputedStyle(e).backgroundColor")
    assert old_colour != new_colour
    assert "rgba(0, 0, 0, 0)" not in (old_colour, new_colour)  # both coloured
    screenshot(page, "admin-history-diff")

    latest.get_by_role("link", name="Roll back this change").click()
    preview = page.locator(".policies-diff tbody tr")
    assert preview.locator(".policies-before").inner_text() == f"4 MiB ({4 * MIB} bytes)"
    assert preview.locator(".policies-after").inner_text() == f"10 MiB ({10 * MIB} bytes)"
    entries = AuditEntry.objects.count()
    confirm = page.get_by_role("button", name="Roll back entry")
    confirm.click()  # no reason: the browser keeps the form
    assert page.locator("#id_reason").evaluate("e => e.validity.valueMissing")
    assert AuditEntry.objects.count() == entries
    page.fill("#id_reason", "The app sends 8 MiB photos after all.")
    screenshot(page, "admin-rollback-confirm")
    confirm.click()
    page.wait_for_url("**/history/")

    assert "Rolled back entry" in page.locator(".messagelist").inner_text()
    policy.refresh_from_db()
    assert policy.max_file_size_bytes == 10 * MIB
    rollback = AuditEntry.objects.order_by("-seq").first()
    assert (rollback.action, rollback.reason) == (
        "rollback",
        "The app sends 8 MiB photos after all.",
    )


def test_the_audit_entry_shows_what_a_policy_change_did(
    admin_page, live_server, actor, monkeypatch
):
    page = admin_page
    policy = UploadPolicy.objects.get(slug="default")
    changed = timezone.now() - timedelta(days=3)
    with monkeypatch.context() as patch:
        patch.setattr(timezone, "now", lambda: changed)
        services.policy_update(
            policy=policy,
            changes={"max_file_size_bytes": 1 * MIB},
            version=policy.version,
            actor=actor,
            reason="Only small photos.",
            rollback_note="Roll back if refusals rise.",
        )
    entry = AuditEntry.objects.order_by("-seq").first()
    for hours in (-60, -30, -20, -5, 2):
        event("default", "accepted", changed + timedelta(hours=hours))
    event("default", "file_too_large", changed - timedelta(hours=10))
    refused_after = [
        event("default", "file_too_large", changed + timedelta(hours=h)) for h in (1, 4, 9, 30, 50)
    ]

    page.goto(f"{live_server.url}/admin/policies/auditentry/{entry.pk}/change/")

    watch = page.locator(".policies-watch-table")
    assert "the 3\xa0days before and the 3\xa0days after" in watch.inner_text()
    assert watch.locator(".policies-watch-accepted td").all_inner_texts() == ["4", "1"]
    refused = watch.locator(".policies-watch-refused td")
    assert refused.all_inner_texts() == ["1 (20%)", "5 (83%)"]
    screenshot(page, "admin-audit-entry-watch")
    refused.nth(1).get_by_role("link").click()
    page.wait_for_load_state()
    assert page.locator("#result_list tbody tr").count() == len(refused_after)
    assert "accepted" not in page.locator("#result_list tbody").inner_text()


def test_the_rejections_dashboard_charts_the_last_thirty_days(admin_page, live_server):
    page = admin_page
    now = timezone.now()
    codes = ["file_too_large", "type_not_allowed", "quota_exceeded", "malware_detected"]
    for day in range(1, 29):
        for n in range(day % 5):
            event(
                ["default", "avatars"][n % 2],
                codes[(day + n) % len(codes)],
                now - timedelta(days=day),
            )
        event("default", "accepted", now - timedelta(days=day))
    CspReport.objects.create(
        document_path="/upload/",
        directive="script-src-elem",
        blocked_uri="https://cdn.example.com",
        count=12,
        first_seen=now - timedelta(days=2),
        last_seen=now - timedelta(hours=1),
    )
    refused = UploadEvent.objects.exclude(code="accepted")
    too_large = refused.filter(code="file_too_large").count()

    page.goto(live_server.url + "/admin/")
    page.get_by_role("link", name="Rejections dashboard").click()

    assert page.locator("svg.policies-chart").is_visible()
    assert page.locator("svg.policies-chart a.policies-chart-bar").count() == len(
        {e.created_at.date() for e in refused}
    )
    assert (
        f"{refused.count()} uploads refused"
        in page.locator(".policies-dashboard-summary").inner_text()
    )
    assert "script-src-elem" in page.locator(".policies-dashboard-aside").inner_text()
    screenshot(page, "admin-dashboard")
    page.get_by_role("link", name="file_too_large", exact=True).first.click()
    page.wait_for_load_state()
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == too_large
    assert set(rows.locator("td.field-code").all_inner_texts()) == {"file_too_large"}


def test_the_rule_list_previews_the_headers_of_a_path(admin_page, live_server, actor):
    page = admin_page
    services.rule_create(
        data={
            "name": "admin-rehearsal",
            "path": "/admin/",
            "priority": 250,
            "mode": "report_only",
            "csp": {"default-src": ["'self'"], "img-src": ["'self'"], "frame-src": ["'none'"]},
        },
        actor=actor,
        reason="Try a stricter admin CSP.",
        rollback_note="Delete the rehearsal.",
    )
    page.goto(live_server.url + "/admin/policies/headerrule/")
    marked = page.locator("#result_list tr", has=page.get_by_role("link", name="admin-rehearsal"))
    assert marked.locator(".policies-rehearsal").inner_text() == "report-only"

    page.fill("#id_preview_path", "/admin/login/")
    page.get_by_role("button", name="Preview").click()
    page.wait_for_load_state()

    table = page.locator(".policies-preview-table")
    csp = table.locator("tr", has=page.get_by_text("Content-Security-Policy", exact=True))
    assert csp.locator(".policies-preview-source").inner_text() == "admin"
    report_only = table.locator(
        "tr", has=page.get_by_text("Content-Security-Policy-Report-Only", exact=True)
    )
    assert "admin-rehearsal" in report_only.locator(".policies-preview-source").inner_text()
    screenshot(page, "admin-rule-list-preview")
