"""The admin pages as an admin reads them: grouped forms with help, readable sizes, coloured diffs,
the rollback confirmation, what a policy change did to uploads, the rejections dashboard and the
report-only marks."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from policies import services
from policies.forms import BYTE_FIELDS, editable_fields
from policies.models import MIB, AuditEntry, CspReport, HeaderRule, UploadPolicy
from uploads.dashboard import period
from uploads.models import UploadEvent
from uploads.selectors import release_watch

pytestmark = pytest.mark.django_db

WHY = {"reason": "Phones send 4 MiB at most.", "rollback_note": "Roll back this entry."}
DASHBOARD = reverse("admin:uploads_uploadevent_dashboard")
EVENTS = reverse("admin:uploads_uploadevent_changelist")


def url(model: str, view: str, *args: Any) -> str:
    return reverse(f"admin:policies_{model}_{view}", args=args)


def event(slug: str, code: str, at: datetime, *, would_refuse: str = "") -> UploadEvent:
    """An upload decision recorded at `at` (created_at is set on insert, so moved after it)."""
    made = UploadEvent.objects.create(policy_slug=slug, code=code, would_refuse_code=would_refuse)
    UploadEvent.objects.filter(pk=made.pk).update(created_at=at)
    return made


def change_policy(
    policy: UploadPolicy, actor, monkeypatch, *, at: datetime | None = None, **changes
):
    """Change `policy` through the service, its audit entry dated `at` (default: now)."""
    with monkeypatch.context() as patch:
        if at is not None:
            patch.setattr(timezone, "now", lambda: at)
        services.policy_update(
            policy=policy, changes=changes, version=policy.version, actor=actor, **WHY
        )
    policy.refresh_from_db()
    return AuditEntry.objects.filter(object_type="upload_policy").order_by("-seq").first()


def listed_events(client, address: str) -> set[int]:
    """The ids of the upload events a link to the event list shows."""
    response = client.get(address)
    assert response.status_code == HTTPStatus.OK, address  # a bad filter redirects with ?e=1
    return {e.pk for e in response.context["cl"].queryset}


def row_cells(body: str, css_class: str) -> list[str]:
    """The cells of the table row with `css_class`, as text."""
    row = re.search(rf'<tr class="{css_class}">(.*?)</tr>', body, re.DOTALL)
    assert row, css_class
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.DOTALL)
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in cells]


def row_links(body: str, css_class: str) -> list[str]:
    row = re.search(rf'<tr class="{css_class}">(.*?)</tr>', body, re.DOTALL)
    return [href.replace("&amp;", "&") for href in re.findall(r'href="([^"]+)"', row.group(1))]


@pytest.fixture
def editor_client(client, editor):
    client.force_login(editor)
    return client


@pytest.fixture
def watcher(editor):
    """The editor, also allowed to read upload events (so the numbers link to them)."""
    editor.user_permissions.add(Permission.objects.get(codename="view_uploadevent"))
    return editor


@pytest.fixture
def watcher_client(client, watcher):
    client.force_login(watcher)
    return client


# --- Change forms --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "sections"),
    [
        ("uploadpolicy", ["Ownership", "Status", "Limits", "Types", "Archives", "Quota"]),
        ("headerrule", ["Rule", "Where", "Content Security Policy", "Transport and framing"]),
    ],
)
def test_the_change_form_groups_fields_and_ends_with_a_marked_why_section(
    editor_client, default_policy, model, sections
):
    pk = default_policy.pk if model == "uploadpolicy" else HeaderRule.objects.get(name="admin").pk

    response = editor_client.get(url(model, "change", pk))

    fieldsets = [(fs.name, fs.classes, fs.fields) for fs in response.context["adminform"]]
    names = [name for name, _, _ in fieldsets]
    assert set(sections) <= set(names)
    why_name, why_classes, why_fields = fieldsets[-1]
    assert why_name.startswith("Why")
    assert "policies-why" in why_classes
    assert {"reason", "rollback_note"} <= set(why_fields)
    body = response.content.decode()
    assert 'class="module aligned policies-why"' in body
    assert "required for every save" in body


@pytest.mark.parametrize("model", [UploadPolicy, HeaderRule])
def test_every_field_has_help_with_an_example(editor_client, default_policy, model):
    address = (
        url("uploadpolicy", "change", default_policy.pk)
        if model is UploadPolicy
        else url("headerrule", "change", HeaderRule.objects.get(name="site-wide").pk)
    )

    form = editor_client.get(address).context["adminform"].form

    for name in [*editable_fields(model), "reason", "rollback_note"]:
        assert "e.g." in form.fields[name].help_text, name


def test_sizes_show_human_readable_beside_the_bytes(editor_client, default_policy):
    response = editor_client.get(url("uploadpolicy", "change", default_policy.pk))

    body = response.content.decode()
    assert (
        '<output class="policies-size" for="id_max_file_size_bytes" aria-live="polite">'
        f"10 MiB ({10 * MIB} bytes)</output>"
    ) in body
    assert f"100 MiB ({100 * MIB} bytes)</output>" in body  # archive_max_expanded_bytes
    assert '<output class="policies-size" for="id_quota_bytes" aria-live="polite"></output>' in body
    assert body.count('class="policies-size"') == len(BYTE_FIELDS)
    assert "policies/admin.js" in body  # keeps them up to date while typing


def test_a_refused_form_shows_the_size_that_was_typed(editor_client, default_policy):
    address = url("uploadpolicy", "change", default_policy.pk)
    data = {
        **{
            f.html_name: f.value()
            for f in editor_client.get(address).context["adminform"].form
            if f.value() not in (None, False)
        },
        "max_file_size_bytes": 3 * MIB,
        "reason": "",
    }
    data = {k: ("on" if v is True else v) for k, v in data.items()}

    response = editor_client.post(address, data)

    assert response.status_code == HTTPStatus.OK  # refused: no reason
    assert f"3 MiB ({3 * MIB} bytes)</output>" in response.content.decode()


# --- History and rollback ------------------------------------------------------------------------


def test_history_shows_each_change_as_a_coloured_diff(
    editor_client, default_policy, actor, monkeypatch
):
    change_policy(default_policy, actor, monkeypatch, max_file_size_bytes=4 * MIB)

    body = editor_client.get(url("uploadpolicy", "history", default_policy.pk)).content.decode()

    assert (
        f'<td class="policies-before"><del>10 MiB ({10 * MIB} bytes)</del></td>\n'
        '      <td class="policies-arrow" aria-hidden="true">→</td>\n'
        f'      <td class="policies-after"><ins>4 MiB ({4 * MIB} bytes)</ins></td>'
    ) in body
    assert WHY["reason"] in body
    assert WHY["rollback_note"] in body


def test_rollback_confirmation_shows_what_changes_and_needs_a_reason(
    editor_client, default_policy, actor, monkeypatch
):
    entry = change_policy(default_policy, actor, monkeypatch, max_file_size_bytes=4 * MIB)
    history = editor_client.get(url("uploadpolicy", "history", default_policy.pk))
    rollback_url = url("uploadpolicy", "rollback", default_policy.pk, entry.seq)
    assert f'href="{rollback_url}">Roll back this change</a>' in history.content.decode()

    confirm = editor_client.get(rollback_url).content.decode()
    refused = editor_client.post(rollback_url, {"reason": "  ", "rollback_note": ""})

    assert "What will change" in confirm
    assert '<th scope="col">Now</th>' in confirm
    assert '<th scope="col">After the rollback</th>' in confirm
    assert f"<del>4 MiB ({4 * MIB} bytes)</del>" in confirm
    assert f"<ins>10 MiB ({10 * MIB} bytes)</ins>" in confirm
    assert refused.status_code == HTTPStatus.OK
    assert "reason" in refused.context["form"].errors
    default_policy.refresh_from_db()
    assert default_policy.max_file_size_bytes == 4 * MIB
    assert AuditEntry.objects.order_by("-seq").first() == entry

    done = editor_client.post(rollback_url, {"reason": "The app sends 8 MiB photos."})

    assert done.status_code == HTTPStatus.FOUND
    default_policy.refresh_from_db()
    assert default_policy.max_file_size_bytes == 10 * MIB


# --- Watch after release -------------------------------------------------------------------------


def test_release_watch_counts_equal_windows_either_side_of_the_change():
    changed = timezone.now() - timedelta(days=3)
    for at, code in [
        (changed - timedelta(days=4), "file_too_large"),  # before the 3-day window
        (changed - timedelta(days=2), "accepted"),
        (changed - timedelta(days=1), "accepted"),
        (changed - timedelta(hours=1), "type_not_allowed"),
        (changed, "file_too_large"),  # at the change: after it
        (changed + timedelta(hours=5), "file_too_large"),
        (changed + timedelta(days=1), "quota_exceeded"),
        (changed + timedelta(days=2), "accepted"),
    ]:
        event("default", code, at)
    event("avatars", "file_too_large", changed + timedelta(hours=1))  # another policy
    event("default", "accepted", changed + timedelta(days=1), would_refuse="quota_exceeded")

    watch = release_watch(
        changed_at=changed,
        before_slug="default",
        after_slug="default",
        now=changed + timedelta(days=3),
    )

    assert watch.window == timedelta(days=3)
    assert (watch.before.start, watch.before.end) == (changed - timedelta(days=3), changed)
    assert (watch.before.accepted, watch.before.refused) == (2, 1)
    assert watch.before.top_codes == [("type_not_allowed", 1)]
    assert (watch.after.accepted, watch.after.refused, watch.after.would_refuse) == (2, 3, 1)
    assert watch.after.top_codes == [("file_too_large", 2), ("quota_exceeded", 1)]
    assert watch.after.refused_percent == 60


def test_release_watch_looks_at_most_seven_days_each_way_and_follows_a_rename():
    changed = timezone.now() - timedelta(days=10)
    event("old-name", "accepted", changed - timedelta(days=6))
    event("old-name", "accepted", changed - timedelta(days=8))  # past 7 days before
    event("new-name", "file_too_large", changed + timedelta(days=6))
    event("new-name", "file_too_large", changed + timedelta(days=8))  # past 7 days after

    watch = release_watch(changed_at=changed, before_slug="old-name", after_slug="new-name")

    assert watch.window == timedelta(days=7)
    assert watch.complete
    assert (watch.before.accepted, watch.before.refused) == (1, 0)
    assert (watch.after.accepted, watch.after.refused) == (0, 1)


def test_the_audit_entry_shows_what_the_change_did_with_linked_numbers(
    watcher_client, default_policy, actor, monkeypatch
):
    changed = timezone.now() - timedelta(days=2)
    entry = change_policy(
        default_policy, actor, monkeypatch, at=changed, max_file_size_bytes=1 * MIB
    )
    before_ok = [event("default", "accepted", changed - timedelta(hours=h)) for h in (1, 5, 30)]
    before_refused = [event("default", "file_too_large", changed - timedelta(hours=40))]
    after_ok = [event("default", "accepted", changed + timedelta(hours=2))]
    after_refused = [
        event("default", "file_too_large", changed + timedelta(hours=h)) for h in (1, 3, 20)
    ] + [event("default", "type_not_allowed", changed + timedelta(hours=4))]
    event("default", "file_too_large", changed - timedelta(days=3))  # outside the 2-day window
    event("avatars", "file_too_large", changed + timedelta(hours=1))  # another policy

    response = watcher_client.get(url("auditentry", "change", entry.pk))

    body = response.content.decode()
    assert "Watch after release" in body
    assert "Uploads in the 2\xa0days before and the 2\xa0days after the change" in body
    assert row_cells(body, "policies-watch-accepted") == ["3", "1"]
    assert row_cells(body, "policies-watch-refused") == ["1 (25%)", "4 (80%)"]
    assert '<td class="policies-watch-worse"' in body  # a larger share refused after it
    assert row_cells(body, "policies-watch-codes") == [
        "file_too_large 1",
        "file_too_large 3, type_not_allowed 1",
    ]
    accepted_before, accepted_after = row_links(body, "policies-watch-accepted")
    refused_before, refused_after = row_links(body, "policies-watch-refused")
    assert listed_events(watcher_client, accepted_before) == {e.pk for e in before_ok}
    assert listed_events(watcher_client, accepted_after) == {e.pk for e in after_ok}
    assert listed_events(watcher_client, refused_before) == {e.pk for e in before_refused}
    assert listed_events(watcher_client, refused_after) == {e.pk for e in after_refused}
    *_, type_link = row_links(body, "policies-watch-codes")
    assert listed_events(watcher_client, type_link) == {after_refused[-1].pk}


def test_without_event_access_the_history_shows_no_upload_numbers(
    editor_client, default_policy, actor, monkeypatch
):
    changed = timezone.now() - timedelta(days=1)
    change_policy(default_policy, actor, monkeypatch, at=changed, max_file_size_bytes=1 * MIB)
    event("default", "file_too_large", changed + timedelta(hours=1))

    body = editor_client.get(url("uploadpolicy", "history", default_policy.pk)).content.decode()

    assert "Watch after release" in body
    assert "shown to those who may view upload events" in body
    assert "policies-watch-refused" not in body  # the editor may not read events
    assert "file_too_large" not in body


def test_release_watch_counts_uploads_under_a_name_given_later_in_the_window(
    watcher_client, default_policy, actor, monkeypatch
):
    changed = timezone.now() - timedelta(days=3)
    entry = change_policy(
        default_policy, actor, monkeypatch, at=changed, max_file_size_bytes=1 * MIB
    )
    change_policy(default_policy, actor, monkeypatch, at=changed + timedelta(days=1), slug="main")
    event("default", "file_too_large", changed + timedelta(hours=2))
    for hours in (30, 40, 50):
        event("main", "file_too_large", changed + timedelta(hours=hours))

    body = watcher_client.get(url("auditentry", "change", entry.pk)).content.decode()

    assert row_cells(body, "policies-watch-refused")[:2] == ["0", "4 (100%)"]
    assert "as default / main" in body


def test_a_change_made_just_now_says_to_come_back_later(
    watcher_client, default_policy, actor, monkeypatch
):
    entry = change_policy(default_policy, actor, monkeypatch, max_file_size_bytes=1 * MIB)

    body = watcher_client.get(url("auditentry", "change", entry.pk)).content.decode()

    assert "come back later" in body


def test_header_rule_entries_have_no_upload_watch(watcher_client):
    entry = AuditEntry.objects.filter(object_type="header_rule").first()

    body = watcher_client.get(url("auditentry", "change", entry.pk)).content.decode()

    assert "Watch after release" not in body


# --- Rejections dashboard ------------------------------------------------------------------------


def noon(days_ago: int) -> datetime:
    today = timezone.localtime().date()
    day = today - timedelta(days=days_ago)
    return timezone.make_aware(datetime.combine(day, datetime.min.time())) + timedelta(hours=12)


@pytest.fixture
def month_of_events():
    """Refusals over the last 30 days (and one older), and some accepted uploads."""
    made = {
        "too_large_default": [event("default", "file_too_large", noon(d)) for d in (1, 1, 2, 29)],
        "type_avatars": [event("avatars", "type_not_allowed", noon(d)) for d in (1, 5)],
        "quota_default": [event("default", "quota_exceeded", noon(3))],
        "accepted": [event("default", "accepted", noon(d)) for d in (1, 2, 3)],
    }
    event("default", "file_too_large", noon(31))  # before the 30 days
    return made


def test_the_dashboard_counts_refusals_per_day_code_and_policy(watcher_client, month_of_events):
    response = watcher_client.get(DASHBOARD)

    assert response.status_code == HTTPStatus.OK
    board = response.context["dashboard"]
    assert (board.refused, board.accepted) == (7, 3)
    assert [(r.name, r.count, r.percent) for r in board.top_codes] == [
        ("file_too_large", 4, 57),
        ("type_not_allowed", 2, 29),
        ("quota_exceeded", 1, 14),
    ]
    assert [(r.name, r.count) for r in board.top_policies] == [("default", 5), ("avatars", 2)]
    bars = {bar.day: bar for bar in board.chart.bars}
    assert len(bars) == 30
    yesterday = bars[noon(1).date()]
    assert yesterday.total == 3
    assert [(s.code, s.count) for s in yesterday.segments] == [
        ("file_too_large", 2),
        ("type_not_allowed", 1),
    ]
    assert bars[noon(29).date()].total == 1  # the first of the 30 days
    assert sum(bar.total for bar in bars.values()) == 7


def test_the_dashboard_links_lead_to_the_matching_events(watcher_client, month_of_events):
    board = watcher_client.get(DASHBOARD).context["dashboard"]
    codes = {r.name: r.url for r in board.top_codes}
    policies = {r.name: r.url for r in board.top_policies}
    yesterday = next(bar for bar in board.chart.bars if bar.day == noon(1).date())

    def ids(*groups: str) -> set[int]:
        return {e.pk for group in groups for e in month_of_events[group]}

    assert listed_events(watcher_client, codes["file_too_large"]) == ids("too_large_default")
    assert listed_events(watcher_client, codes["type_not_allowed"]) == ids("type_avatars")
    assert listed_events(watcher_client, policies["default"]) == ids(
        "too_large_default", "quota_default"
    )
    assert listed_events(watcher_client, yesterday.url) == {
        e.pk for e in UploadEvent.objects.exclude(code="accepted") if e.created_at == noon(1)
    }
    assert len(listed_events(watcher_client, yesterday.url)) == 3
    assert listed_events(watcher_client, board.refused_url) == ids(
        "too_large_default", "type_avatars", "quota_default"
    )


def test_the_dashboard_chart_is_accessible_svg_without_inline_style(
    watcher_client, month_of_events
):
    body = watcher_client.get(DASHBOARD).content.decode()

    start = body.index('<svg class="policies-chart"')
    svg = body[start : body.index("</svg>", start)]
    # A labelled group, not an image: its per-day links stay reachable by screen readers.
    assert 'role="group" aria-labelledby="chart-title chart-desc"' in svg
    assert 'aria-label="' in svg
    assert '<title id="chart-title">' in svg
    assert '<desc id="chart-desc">7 refused in all' in svg
    assert 'class="policies-chart-c0"' in svg
    assert "style" not in svg
    assert "<style" not in body
    assert " style=" not in body
    assert "The numbers behind the chart" in body  # the table fallback


def test_the_dashboard_shows_the_csp_report_summary_beside_it(client, django_user_model):
    now = timezone.now()
    for directive, blocked, count, seen in [
        ("script-src-elem", "https://cdn.example.com", 30, now - timedelta(hours=1)),
        ("style-src-attr", "inline", 10, now - timedelta(days=2)),
        ("img-src", "data", 500, now - timedelta(days=40)),  # last seen before the 30 days
    ]:
        CspReport.objects.create(
            document_path="/admin/",
            directive=directive,
            blocked_uri=blocked,
            count=count,
            first_seen=seen,
            last_seen=seen,
        )
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "x")
    client.force_login(admin)

    response = client.get(DASHBOARD)

    csp = response.context["dashboard"].csp
    assert (csp.reports, csp.rows) == (40, 2)
    assert [(r.name, r.count, r.percent) for r in csp.directives] == [
        ("script-src-elem", 30, 75),
        ("style-src-attr", 10, 25),
    ]
    listed = client.get(csp.directives[0].url).context["cl"].queryset
    assert [r.blocked_uri for r in listed] == ["https://cdn.example.com"]
    assert "https://cdn.example.com" in response.content.decode()


def test_the_csp_summary_needs_its_own_permission(client, django_user_model, month_of_events):
    staff = django_user_model.objects.create_user("ops", password="x", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_uploadevent"))
    client.force_login(staff)

    response = client.get(DASHBOARD)

    assert response.status_code == HTTPStatus.OK
    assert response.context["dashboard"].csp is None
    assert "needs the permission to view them" in response.content.decode()


def test_the_dashboard_needs_the_event_view_permission(client, editor, owner):
    client.force_login(editor)  # staff, policy permissions, but not uploads.view_uploadevent
    staff_without = client.get(DASHBOARD)
    index_without = client.get(reverse("admin:index")).content.decode()
    owner.user_permissions.add(Permission.objects.get(codename="view_uploadevent"))
    client.force_login(owner)  # holds it, but is not staff
    not_staff = client.get(DASHBOARD)
    client.logout()
    anonymous = client.get(DASHBOARD)

    assert staff_without.status_code == HTTPStatus.FORBIDDEN
    assert "Rejections dashboard" not in index_without
    assert not_staff.status_code == HTTPStatus.FOUND
    assert not_staff["Location"].startswith(reverse("admin:login"))
    assert anonymous.status_code == HTTPStatus.FOUND
    assert anonymous["Location"].startswith(reverse("admin:login"))


def test_the_admin_home_and_the_event_list_lead_to_the_dashboard(watcher_client):
    home = watcher_client.get(reverse("admin:index")).content.decode()
    events = watcher_client.get(EVENTS).content.decode()

    assert f'<a href="{DASHBOARD}">Rejections dashboard</a>' in home
    assert f'href="{DASHBOARD}"' in events


def test_the_dashboard_period_is_thirty_local_days_up_to_now():
    start, end, days = period()

    assert len(days) == 30
    assert days[-1] == timezone.localtime().date()
    assert timezone.localtime(start).date() == days[0]
    assert timezone.localtime(start).time() == datetime.min.time()
    assert end - timezone.now() < timedelta(seconds=5)


# --- Report-only marks ---------------------------------------------------------------------------


def test_report_only_policies_and_rules_are_marked_in_their_lists(
    editor_client, default_policy, actor, monkeypatch
):
    services.policy_create(
        data={"slug": "avatars", "mode": "report_only"},
        actor=actor,
        reason="Rehearse avatars.",
        rollback_note="Delete it.",
    )
    services.rule_create(
        data={"name": "api-rehearsal", "path": "/api/", "mode": "report_only"},
        actor=actor,
        reason="Rehearse the API rule.",
        rollback_note="Delete it.",
    )
    badge = (
        '<span class="policies-rehearsal" title="A rehearsal: records what it would do, '
        'enforces nothing.">report-only</span>'
    )

    policies = editor_client.get(reverse("admin:policies_uploadpolicy_changelist"))
    rules = editor_client.get(reverse("admin:policies_headerrule_changelist"))

    for response, marked in [(policies, "avatars"), (rules, "api-rehearsal")]:
        body = response.content.decode()
        assert body.count(badge) == 1
        [row] = [r for r in re.findall(r"<tr>(.*?)</tr>", body, re.DOTALL) if f">{marked}</a>" in r]
        assert badge in row
