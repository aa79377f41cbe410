"""The header rule list in the admin: the header preview, presets and report-only rehearsals."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission

from policies import services
from policies.models import AuditEntry, HeaderRule
from policies.presets import OWASP
from policies.services import rehearsal_name
from tests.policies.test_admin import (
    RULE_ADD,
    RULE_LIST,
    WHY,
    entries_for,
    form_data,
    hidden_inputs,
    messages_of,
    new_entries,
    url,
)

CSP = "Content-Security-Policy"
HSTS = "Strict-Transport-Security"


@pytest.fixture
def editor_client(client, editor):
    client.force_login(editor)
    return client


@pytest.fixture
def rehearsal(actor):
    """A report-only rule on /x/ whose one header has no report-only twin: previewed, not sent."""
    return services.rule_create(
        data={
            "name": "x-rehearsal",
            "match_type": "prefix",
            "path": "/x/",
            "priority": 150,
            "mode": "report_only",
            "custom_headers": {"X-Test": "1"},
        },
        actor=actor,
        reason="Try X-Test on /x/ first.",
        rollback_note="Delete it.",
    )


def lines_by_header(response) -> dict[str, object]:
    return {line.row.header: line for line in response.context["preview_lines"]}


# --- The header preview -----------------------------------------------------------------------


def test_the_rule_list_shows_the_preview_form_and_no_table(editor_client):
    response = editor_client.get(RULE_LIST)

    assert response.status_code == HTTPStatus.OK
    form = response.context["preview_form"]
    assert not form.is_bound
    assert {"preview_path", "preview_host", "preview_https", "preview_signed_in"} <= set(
        form.fields
    )
    assert response.context["preview_lines"] is None
    body = response.content.decode()
    assert 'name="preview_path"' in body
    assert 'type="checkbox" name="preview_https" id="id_preview_https" checked' in body
    assert "policies-preview-table" not in body


def test_the_preview_says_which_rule_sets_each_header(editor_client):
    response = editor_client.get(RULE_LIST, {"preview_path": "/admin/", "preview_https": "on"})

    assert response.status_code == HTTPStatus.OK
    lines = lines_by_header(response)
    admin_rule = HeaderRule.objects.get(name="admin")
    site_wide = HeaderRule.objects.get(name="site-wide")
    assert lines[CSP].row.source == "admin"
    assert lines[CSP].rule_url == url("headerrule", "change", admin_rule.pk)
    assert lines[HSTS].row.source == "site-wide"
    assert lines[HSTS].rule_url == url("headerrule", "change", site_wide.pk)
    assert lines[HSTS].row.note == ""
    body = response.content.decode()
    assert f'<a href="{url("headerrule", "change", admin_rule.pk)}">admin</a>' in body
    assert "<code>Strict-Transport-Security</code>" in body


def test_an_unticked_https_box_previews_plain_http(editor_client):
    response = editor_client.get(RULE_LIST, {"preview_path": "/admin/"})

    assert lines_by_header(response)[HSTS].row.note == "not sent: HTTPS only"
    assert 'name="preview_https" id="id_preview_https" checked' not in response.content.decode()


def test_the_list_filters_still_work_beside_the_preview(editor_client, rehearsal):
    response = editor_client.get(
        RULE_LIST, {"preview_path": "/x/", "preview_host": "", "mode__exact": "report_only"}
    )

    assert response.status_code == HTTPStatus.OK  # not the "?e=1" redirect of a bad lookup
    cl = response.context["cl"]
    assert [rule.name for rule in cl.result_list] == ["x-rehearsal"]
    assert cl.has_active_filters
    assert "X-Test" in lines_by_header(response)
    # The filters' links keep the preview, and the preview form keeps the filter.
    assert "preview_path=%2Fx%2F" in cl.get_query_string({"enabled__exact": "1"})
    assert response.context["preview_kept"] == [("mode__exact", "report_only")]
    assert '<input type="hidden" name="mode__exact" value="report_only">' in (
        response.content.decode()
    )


@pytest.mark.parametrize("path", ["admin/", ""])
def test_an_invalid_preview_path_shows_an_error_and_no_table(editor_client, path):
    response = editor_client.get(RULE_LIST, {"preview_path": path})

    assert response.status_code == HTTPStatus.OK
    assert "preview_path" in response.context["preview_form"].errors
    assert response.context["preview_lines"] is None
    body = response.content.decode()
    assert "policies-preview-table" not in body
    assert 'class="errorlist"' in body
    assert len(response.context["cl"].result_list) == HeaderRule.objects.count()


def test_a_report_only_rule_is_previewed_as_a_rehearsal_and_marked_in_the_list(
    editor_client, rehearsal
):
    listed = editor_client.get(RULE_LIST)
    assert listed.content.decode().count('class="policies-rehearsal"') == 1  # x-rehearsal only

    response = editor_client.get(RULE_LIST, {"preview_path": "/x/page", "preview_https": "on"})

    line = lines_by_header(response)["X-Test"]
    assert line.row.source == "x-rehearsal"
    assert line.rehearsal
    assert "not sent" in line.row.note
    assert line.rule_url == url("headerrule", "change", rehearsal.pk)
    body = response.content.decode()
    assert 'class="policies-preview-rehearsal' in body
    assert lines_by_header(response)[CSP].row.source == "site-wide"  # still enforced


# --- Presets -----------------------------------------------------------------------------------


def test_the_list_offers_each_preset(editor_client):
    body = editor_client.get(RULE_LIST).content.decode()

    assert f'href="{RULE_ADD}?preset=strict"' in body
    assert f'href="{RULE_ADD}?preset=owasp"' in body


def test_a_preset_prefills_the_add_form_and_saves_with_one_entry(editor_client):
    address = f"{RULE_ADD}?preset=owasp"
    page = editor_client.get(address)
    assert any("OWASP recommended" in m for m in messages_of(page))
    data = form_data(editor_client, address)
    assert data["cross_origin_embedder_policy"] == "require-corp"
    assert "upgrade-insecure-requests" in data["csp"]
    assert "name" not in data
    data.update(name="owasp-api", path="/api/", priority=250, **WHY)
    before = AuditEntry.objects.count()

    response = editor_client.post(address, data)

    assert response.status_code == HTTPStatus.FOUND, response.context["adminform"].form.errors
    rule = HeaderRule.objects.get(name="owasp-api")
    assert (rule.path, rule.priority, rule.mode) == ("/api/", 250, "enforce")
    assert rule.csp == OWASP["csp"]
    assert rule.cross_origin_embedder_policy == "require-corp"
    assert rule.hsts_max_age == OWASP["hsts_max_age"]
    assert AuditEntry.objects.count() == before + 1
    [entry] = entries_for("header_rule", rule.pk)
    assert (entry.action, entry.actor, entry.reason) == ("create", "user:editor", WHY["reason"])


def test_an_unknown_preset_is_said_and_the_form_starts_empty(editor_client):
    response = editor_client.get(RULE_ADD, {"preset": "nope"})

    assert response.status_code == HTTPStatus.OK
    assert any("no preset named “nope”" in m for m in messages_of(response))
    assert response.context["adminform"].form["csp"].value() == "{}"


# --- Copying as a report-only rehearsal ---------------------------------------------------------


def test_copy_as_rehearsal_asks_why_then_creates_a_report_only_copy(editor_client):
    site_wide = HeaderRule.objects.get(name="site-wide")
    selected = {"action": "copy_as_rehearsal", ACTION_CHECKBOX_NAME: [site_wide.pk], "index": 0}
    before = AuditEntry.objects.count()
    rules = HeaderRule.objects.count()

    confirm = editor_client.post(RULE_LIST, selected)

    assert confirm.status_code == HTTPStatus.OK
    assert [row["copy_name"] for row in confirm.context["rows"]] == ["site-wide-rehearsal"]
    assert (HeaderRule.objects.count(), AuditEntry.objects.count()) == (rules, before)
    shown = hidden_inputs(confirm)
    unexplained = editor_client.post(RULE_LIST, shown)
    assert "reason" in unexplained.context["form"].errors
    assert (HeaderRule.objects.count(), AuditEntry.objects.count()) == (rules, before)

    done = editor_client.post(RULE_LIST, {**shown, **WHY}, follow=True)

    assert done.status_code == HTTPStatus.OK
    copy = HeaderRule.objects.get(name="site-wide-rehearsal")
    assert (copy.mode, copy.enabled) == ("report_only", True)
    assert (copy.match_type, copy.path, copy.host, copy.priority) == (
        site_wide.match_type,
        site_wide.path,
        site_wide.host,
        site_wide.priority,
    )
    assert copy.csp == site_wide.csp
    assert copy.hsts_max_age == site_wide.hsts_max_age
    assert copy.permissions_policy == site_wide.permissions_policy
    assert copy.remove_headers == site_wide.remove_headers
    [entry] = new_entries(before)
    assert (entry.action, entry.object_repr, entry.reason, entry.rollback_note) == (
        "create",
        "site-wide-rehearsal",
        WHY["reason"],
        WHY["rollback_note"],
    )
    assert any("site-wide-rehearsal (of site-wide" in m for m in messages_of(done))
    site_wide.refresh_from_db()
    assert (site_wide.mode, site_wide.version) == ("enforce", 1)  # the rule itself is untouched

    again = editor_client.post(RULE_LIST, selected)
    assert [row["copy_name"] for row in again.context["rows"]] == ["site-wide-rehearsal-2"]
    editor_client.post(RULE_LIST, {**hidden_inputs(again), **WHY})
    second = HeaderRule.objects.get(name="site-wide-rehearsal-2")
    assert second.mode == "report_only"
    assert len(new_entries(before)) == 2


def test_copy_as_rehearsal_needs_the_add_permission(client, editor):
    editor.groups.clear()
    editor.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="policies",
            codename__in=["view_headerrule", "change_headerrule", "delete_headerrule"],
        )
    )
    client.force_login(editor)

    page = client.get(RULE_LIST)

    choices = [name for name, _ in page.context["action_form"].fields["action"].choices]
    assert "delete_with_reason" in choices
    assert "copy_as_rehearsal" not in choices
    assert "?preset=" not in page.content.decode()


def test_rehearsal_names_count_up_and_fit_the_name_field():
    assert rehearsal_name("api", set()) == "api-rehearsal"
    assert rehearsal_name("api", {"api-rehearsal", "api-rehearsal-2"}) == "api-rehearsal-3"
    long = "a" * 100
    assert rehearsal_name(long, set()) == "a" * 90 + "-rehearsal"
    assert len(rehearsal_name(long, {"a" * 90 + "-rehearsal"})) == 100
