"""The policies admin, through its real views: every write is audited, stale forms never win."""

from __future__ import annotations

from html.parser import HTMLParser
from http import HTTPStatus
from typing import Any

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.urls import reverse

from policies import services
from policies.forms import editable_fields
from policies.models import MIB, AuditEntry, HeaderRule, UploadPolicy
from policies.services import Actor
from uploads.models import Upload

WHY = {"reason": "Tighten the limit after review.", "rollback_note": "Roll back this entry."}

POLICY_ADD = reverse("admin:policies_uploadpolicy_add")
POLICY_LIST = reverse("admin:policies_uploadpolicy_changelist")
RULE_ADD = reverse("admin:policies_headerrule_add")
RULE_LIST = reverse("admin:policies_headerrule_changelist")


def url(model: str, view: str, *args: Any) -> str:
    return reverse(f"admin:policies_{model}_{view}", args=args)


def form_data(client, address: str) -> dict[str, Any]:
    """GET an admin form and return the POST data it would send untouched (as a browser would)."""
    response = client.get(address)
    assert response.status_code == HTTPStatus.OK
    data: dict[str, Any] = {}
    for field in response.context["adminform"].form:
        value = field.value()
        if value is None or value is False:
            continue  # an empty box or an unticked checkbox sends nothing
        data[field.html_name] = "on" if value is True else value
    return data


def entries_for(obj_type: str, pk: Any) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(object_type=obj_type, object_id=str(pk)).order_by("seq"))


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


class _HiddenInputs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, list[str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "input" and found.get("type") == "hidden" and found.get("name"):
            self.data.setdefault(found["name"], []).append(found.get("value") or "")


def hidden_inputs(response) -> dict[str, list[str]]:
    """The hidden inputs of a confirmation page: what a browser posts back when confirming."""
    parser = _HiddenInputs()
    parser.feed(response.content.decode())
    return parser.data


def new_entries(before: int) -> list[AuditEntry]:
    """The audit entries appended after there were `before` of them (seq counts from 1)."""
    return list(AuditEntry.objects.filter(seq__gt=before).order_by("seq"))


def reversed_diff(diff: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: {"before": d["after"], "after": d["before"]} for name, d in diff.items()}


def deleted_diff(stored: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The diff of deleting an object whose snapshot was `stored`: every set field goes away."""
    return {
        name: {"before": value, "after": None}
        for name, value in stored.items()
        if name != "version" and value is not None
    }


@pytest.fixture
def editor_client(client, editor):
    client.force_login(editor)
    return client


@pytest.fixture
def avatars(actor):
    return services.policy_create(
        data={
            "slug": "avatars",
            "title": "Avatars",
            "mode": "report_only",
            "allowed_types": ["image/png"],
            "allowed_extensions": ["png"],
            "max_file_size_bytes": 2 * MIB,
            "max_request_bytes": 3 * MIB,
        },
        actor=actor,
        reason="Avatars need their own limits.",
        rollback_note="Delete it.",
    )


@pytest.fixture
def rule(actor):
    return services.rule_create(
        data={"name": "api", "match_type": "prefix", "path": "/api/", "priority": 200},
        actor=actor,
        reason="API responses are never framed.",
        rollback_note="Delete it.",
    )


# --- Lists -------------------------------------------------------------------------------------


def test_policy_list_shows_sizes_and_marks_rehearsals(editor_client, default_policy, avatars):
    response = editor_client.get(POLICY_LIST)

    assert response.status_code == HTTPStatus.OK
    body = response.content.decode()
    assert "10 MiB" in body
    assert "2 MiB" in body
    assert body.count('class="policies-rehearsal"') == 1  # avatars only


def test_policy_list_filters_and_searches(editor_client, default_policy, avatars):
    rehearsals = editor_client.get(POLICY_LIST, {"mode__exact": "report_only"})
    found = editor_client.get(POLICY_LIST, {"q": "Portcullis operators"})  # default's owner

    assert [p.slug for p in rehearsals.context["cl"].result_list] == ["avatars"]
    assert [p.slug for p in found.context["cl"].result_list] == ["default"]


def test_every_editable_field_is_on_the_form(editor_client, default_policy, rule):
    for model, address in [
        (UploadPolicy, url("uploadpolicy", "change", default_policy.pk)),
        (HeaderRule, url("headerrule", "change", rule.pk)),
    ]:
        form = editor_client.get(address).context["adminform"].form
        assert set(editable_fields(model)) <= set(form.fields)
        assert {"reason", "rollback_note", "based_on_version"} <= set(form.fields)


# --- Add and change ----------------------------------------------------------------------------


def test_adding_a_policy_writes_one_create_entry(editor_client):
    data = form_data(editor_client, POLICY_ADD)
    data.update(
        slug="documents",
        title="Documents",
        allowed_types=["application/pdf"],
        allowed_extensions="pdf",
        **WHY,
    )
    before = AuditEntry.objects.count()

    response = editor_client.post(POLICY_ADD, data)

    assert response.status_code == HTTPStatus.FOUND, response.context["adminform"].form.errors
    policy = UploadPolicy.objects.get(slug="documents")
    assert policy.allowed_types == ["application/pdf"]
    assert policy.allowed_extensions == ["pdf"]
    assert policy.version == 1
    assert AuditEntry.objects.count() == before + 1
    [entry] = entries_for("upload_policy", policy.pk)
    assert entry.action == "create"
    assert entry.actor == "user:editor"
    assert entry.reason == WHY["reason"]
    assert entry.rollback_note == WHY["rollback_note"]


def test_changing_a_policy_writes_one_entry_with_the_diff(editor_client, default_policy):
    address = url("uploadpolicy", "change", default_policy.pk)
    data = form_data(editor_client, address)
    data.update(max_file_size_bytes=5 * MIB, **WHY)
    before = AuditEntry.objects.count()

    response = editor_client.post(address, data)

    assert response.status_code == HTTPStatus.FOUND, response.context["adminform"].form.errors
    default_policy.refresh_from_db()
    assert default_policy.max_file_size_bytes == 5 * MIB
    assert default_policy.version == 2
    assert AuditEntry.objects.count() == before + 1
    entry = entries_for("upload_policy", default_policy.pk)[-1]
    assert entry.action == "update"
    assert entry.actor == "user:editor"
    assert entry.diff == {"max_file_size_bytes": {"before": 10 * MIB, "after": 5 * MIB}}
    assert (entry.reason, entry.rollback_note) == (WHY["reason"], WHY["rollback_note"])


def test_an_admin_save_records_the_request_id_and_client_ip(editor_client, default_policy):
    address = url("uploadpolicy", "change", default_policy.pk)
    data = form_data(editor_client, address)
    data.update(max_file_size_bytes=5 * MIB, **WHY)
    before = AuditEntry.objects.count()

    response = editor_client.post(
        address, data, HTTP_X_REQUEST_ID="req-abc-123", REMOTE_ADDR="203.0.113.7"
    )

    assert response.status_code == HTTPStatus.FOUND, response.context["adminform"].form.errors
    [entry] = new_entries(before)
    assert entry.action == "update"
    assert entry.request_id == "req-abc-123"
    assert entry.client_ip == "203.0.113.7"


def test_saving_unchanged_form_records_nothing(editor_client, default_policy):
    address = url("uploadpolicy", "change", default_policy.pk)
    data = form_data(editor_client, address)
    before = AuditEntry.objects.count()

    response = editor_client.post(address, {**data, **WHY}, follow=True)

    assert response.status_code == HTTPStatus.OK
    assert "Nothing changed, so nothing was recorded." in messages_of(response)
    assert AuditEntry.objects.count() == before
    default_policy.refresh_from_db()
    assert default_policy.version == 1


@pytest.mark.parametrize("missing", ["reason", "rollback_note"])
def test_saving_without_reason_or_rollback_note_is_refused(editor_client, default_policy, missing):
    address = url("uploadpolicy", "change", default_policy.pk)
    data = form_data(editor_client, address)
    data.update(max_file_size_bytes=5 * MIB, **WHY)
    data[missing] = "   "
    before = AuditEntry.objects.count()

    response = editor_client.post(address, data)

    assert response.status_code == HTTPStatus.OK
    assert response.context["adminform"].form.errors[missing] == ["This field is required."]
    default_policy.refresh_from_db()
    assert default_policy.max_file_size_bytes == 10 * MIB
    assert AuditEntry.objects.count() == before


def test_adding_without_why_creates_nothing(editor_client):
    data = form_data(editor_client, POLICY_ADD)
    data.update(slug="documents")

    response = editor_client.post(POLICY_ADD, data)

    assert response.status_code == HTTPStatus.OK
    assert set(response.context["adminform"].form.errors) == {"reason", "rollback_note"}
    assert not UploadPolicy.objects.filter(slug="documents").exists()


def test_a_stale_form_is_refused_and_never_overwrites(editor_client, default_policy, actor):
    address = url("uploadpolicy", "change", default_policy.pk)
    data = form_data(editor_client, address)  # based on version 1
    services.policy_update(
        policy=default_policy,
        changes={"max_file_size_bytes": 8 * MIB},
        version=1,
        actor=actor,
        reason="Someone else's change.",
        rollback_note="Roll it back.",
    )
    before = AuditEntry.objects.count()

    response = editor_client.post(address, {**data, "max_file_size_bytes": 5 * MIB, **WHY})

    assert response.status_code == HTTPStatus.OK
    [error] = response.context["adminform"].form.non_field_errors()
    assert "you had version 1, it is now version 2" in error  # the service's own message
    assert "reload" in error.lower()
    assert response.content.decode().count("it is now version 2") == 1  # shown once, on the form
    default_policy.refresh_from_db()
    assert default_policy.max_file_size_bytes == 8 * MIB
    assert default_policy.version == 2
    assert AuditEntry.objects.count() == before


def test_a_form_without_its_version_is_refused(editor_client, default_policy):
    address = url("uploadpolicy", "change", default_policy.pk)
    data = form_data(editor_client, address)
    del data["based_on_version"]
    before = AuditEntry.objects.count()

    response = editor_client.post(address, {**data, "max_file_size_bytes": 5 * MIB, **WHY})

    assert response.status_code == HTTPStatus.OK
    [error] = response.context["adminform"].form.non_field_errors()
    assert "which version you edited" in error
    assert "reload" in error.lower()
    default_policy.refresh_from_db()
    assert (default_policy.max_file_size_bytes, default_policy.version) == (10 * MIB, 1)
    assert AuditEntry.objects.count() == before


def test_a_form_for_a_policy_deleted_meanwhile_is_refused(editor_client, avatars, actor):
    address = url("uploadpolicy", "change", avatars.pk)
    data = form_data(editor_client, address)
    services.policy_delete(
        policy=avatars, version=1, actor=actor, reason="Gone.", rollback_note="Roll back."
    )
    before = AuditEntry.objects.count()

    response = editor_client.post(
        address, {**data, "max_file_size_bytes": 5 * MIB, **WHY}, follow=True
    )

    assert response.status_code == HTTPStatus.OK
    assert any("Perhaps it was deleted?" in m for m in messages_of(response))
    assert not UploadPolicy.objects.filter(pk=avatars.pk).exists()
    assert AuditEntry.objects.count() == before


def test_a_policy_the_service_finds_gone_is_refused_on_the_form(
    editor_client, default_policy, monkeypatch
):
    """Deleted between the admin loading it and the service locking it: the service's words."""

    def gone(**kwargs):
        raise ValidationError("That upload policy no longer exists.")

    monkeypatch.setattr(services, "policy_update", gone)
    address = url("uploadpolicy", "change", default_policy.pk)
    data = form_data(editor_client, address)

    response = editor_client.post(address, {**data, "max_file_size_bytes": 5 * MIB, **WHY})

    assert response.status_code == HTTPStatus.OK
    form = response.context["adminform"].form
    assert form.non_field_errors() == ["That upload policy no longer exists."]
    assert form["max_file_size_bytes"].value() == str(5 * MIB)  # the admin's input is kept


def test_service_validation_errors_show_on_the_form(editor_client, default_policy, monkeypatch):
    def refuse(**kwargs):
        raise ValidationError({"max_file_size_bytes": ["Too big for this disk."]})

    monkeypatch.setattr(services, "policy_update", refuse)
    address = url("uploadpolicy", "change", default_policy.pk)
    data = form_data(editor_client, address)

    response = editor_client.post(address, {**data, "max_file_size_bytes": 5 * MIB, **WHY})

    assert response.status_code == HTTPStatus.OK
    errors = response.context["adminform"].form.errors
    assert errors["max_file_size_bytes"] == ["Too big for this disk."]
    default_policy.refresh_from_db()
    assert default_policy.max_file_size_bytes == 10 * MIB


def test_model_rules_show_as_field_errors(editor_client, default_policy):
    address = url("uploadpolicy", "change", default_policy.pk)
    data = form_data(editor_client, address)
    data.update(max_request_bytes=1024, allowed_extensions="png, exe", **WHY)

    response = editor_client.post(address, data)

    errors = response.context["adminform"].form.errors
    assert "max_request_bytes" in errors
    assert "allowed_extensions" in errors
    default_policy.refresh_from_db()
    assert default_policy.version == 1


def test_change_page_shows_sizes_human_readable(editor_client, default_policy):
    response = editor_client.get(url("uploadpolicy", "change", default_policy.pk))

    help_text = response.context["adminform"].form.fields["max_file_size_bytes"].help_text
    assert "Now 10 MiB." in help_text


# --- Header rules ------------------------------------------------------------------------------


def test_adding_a_rule_writes_one_create_entry(editor_client):
    data = form_data(editor_client, RULE_ADD)
    data.update(
        name="file-downloads",
        path="/downloads/",
        csp='{"default-src": ["\'none\'"]}',
        remove_headers="X-Powered-By",
        x_frame_options="DENY",
        **WHY,
    )

    response = editor_client.post(RULE_ADD, data)

    assert response.status_code == HTTPStatus.FOUND, response.context["adminform"].form.errors
    rule = HeaderRule.objects.get(name="file-downloads")
    assert rule.csp == {"default-src": ["'none'"]}
    assert rule.remove_headers == ["X-Powered-By"]
    [entry] = entries_for("header_rule", rule.pk)
    assert (entry.action, entry.actor, entry.reason) == ("create", "user:editor", WHY["reason"])


def test_changing_a_rule_writes_one_entry_with_the_diff(editor_client, rule):
    address = url("headerrule", "change", rule.pk)
    data = form_data(editor_client, address)
    data.update(priority=300, custom_headers='{"X-Robots-Tag": "none"}', **WHY)

    response = editor_client.post(address, data)

    assert response.status_code == HTTPStatus.FOUND, response.context["adminform"].form.errors
    rule.refresh_from_db()
    assert rule.version == 2
    entry = entries_for("header_rule", rule.pk)[-1]
    assert entry.diff == {
        "custom_headers": {"before": {}, "after": {"X-Robots-Tag": "none"}},
        "priority": {"before": 200, "after": 300},
    }


def test_an_invalid_rule_is_refused_with_field_errors(editor_client, rule):
    address = url("headerrule", "change", rule.pk)
    data = form_data(editor_client, address)
    data.update(custom_headers='{"Set-Cookie": "a=b"}', path="no-slash", **WHY)

    response = editor_client.post(address, data)

    assert response.status_code == HTTPStatus.OK
    assert {"custom_headers", "path"} <= set(response.context["adminform"].form.errors)
    rule.refresh_from_db()
    assert rule.version == 1


def test_a_stale_rule_form_is_refused(editor_client, rule, actor):
    address = url("headerrule", "change", rule.pk)
    data = form_data(editor_client, address)
    services.rule_update(
        rule=rule,
        changes={"priority": 150},
        version=1,
        actor=actor,
        reason="Someone else's change.",
        rollback_note="Roll it back.",
    )

    response = editor_client.post(address, {**data, "priority": 300, **WHY})

    assert "now version 2" in response.context["adminform"].form.non_field_errors()[0]
    rule.refresh_from_db()
    assert rule.priority == 150


def test_deleting_a_rule_and_rolling_the_delete_back(editor_client, rule):
    stored = services.snapshot(rule)
    delete_url = url("headerrule", "delete", rule.pk)
    assert editor_client.get(delete_url).context["form"]["based_on_version"].value() == 1
    before = AuditEntry.objects.count()

    deleted = editor_client.post(delete_url, {"based_on_version": 1, **WHY})

    assert deleted.status_code == HTTPStatus.FOUND
    assert not HeaderRule.objects.filter(pk=rule.pk).exists()
    [delete_entry] = new_entries(before)
    assert (delete_entry.object_type, delete_entry.object_id) == ("header_rule", str(rule.pk))
    assert delete_entry.action == "delete"
    assert (delete_entry.reason, delete_entry.rollback_note) == (
        WHY["reason"],
        WHY["rollback_note"],
    )
    assert delete_entry.diff == deleted_diff(stored)

    entry_page = editor_client.get(url("auditentry", "change", delete_entry.pk))
    rollback_url = url("auditentry", "rollback", delete_entry.pk)
    assert entry_page.context["rollback_url"] == rollback_url
    restored = editor_client.post(
        rollback_url, {"reason": "Deleted by mistake.", "rollback_note": "Delete it again."}
    )

    assert restored.status_code == HTTPStatus.FOUND
    back = HeaderRule.objects.get(pk=rule.pk)
    assert (back.name, back.match_type, back.path, back.priority) == ("api", "prefix", "/api/", 200)
    assert {**services.snapshot(back), "version": 1} == stored
    assert back.version == 2
    [rollback] = new_entries(delete_entry.seq)
    assert (rollback.action, rollback.rolls_back_seq) == ("rollback", delete_entry.seq)
    assert (rollback.reason, rollback.rollback_note) == ("Deleted by mistake.", "Delete it again.")
    assert rollback.diff == reversed_diff(delete_entry.diff)


# --- Delete, and rolling a delete back -----------------------------------------------------------


def test_delete_page_asks_why_then_deletes_and_rollback_restores(editor_client, avatars):
    stored = services.snapshot(avatars)
    delete_url = url("uploadpolicy", "delete", avatars.pk)
    page = editor_client.get(delete_url)
    assert page.status_code == HTTPStatus.OK
    assert page.context["form"]["based_on_version"].value() == 1

    refused = editor_client.post(delete_url, {"based_on_version": 1})
    assert set(refused.context["form"].errors) == {"reason", "rollback_note"}
    assert UploadPolicy.objects.filter(pk=avatars.pk).exists()

    before = AuditEntry.objects.count()
    deleted = editor_client.post(delete_url, {"based_on_version": 1, **WHY})
    assert deleted.status_code == HTTPStatus.FOUND
    assert not UploadPolicy.objects.filter(pk=avatars.pk).exists()
    [delete_entry] = new_entries(before)
    assert (delete_entry.object_type, delete_entry.object_id) == ("upload_policy", str(avatars.pk))
    assert delete_entry.action == "delete"
    assert (delete_entry.reason, delete_entry.rollback_note) == (
        WHY["reason"],
        WHY["rollback_note"],
    )
    assert delete_entry.diff == deleted_diff(stored)
    assert delete_entry.diff["slug"] == {"before": "avatars", "after": None}

    # A deleted policy has no change page: roll back from the audit entry's page.
    entry_page = editor_client.get(url("auditentry", "change", delete_entry.pk))
    rollback_url = url("auditentry", "rollback", delete_entry.pk)
    assert entry_page.context["rollback_url"] == rollback_url
    preview = editor_client.get(rollback_url)
    assert "re-creates" in preview.context["effect"]
    restored = editor_client.post(
        rollback_url, {"reason": "Deleted by mistake.", "rollback_note": "Delete it again."}
    )

    assert restored.status_code == HTTPStatus.FOUND
    policy = UploadPolicy.objects.get(pk=avatars.pk)
    assert {**services.snapshot(policy), "version": 1} == stored
    [rollback] = new_entries(delete_entry.seq)
    assert rollback.action == "rollback"
    assert rollback.rolls_back_seq == delete_entry.seq
    assert (rollback.reason, rollback.rollback_note) == ("Deleted by mistake.", "Delete it again.")
    assert rollback.diff == reversed_diff(delete_entry.diff)


def test_deleting_with_a_stale_version_deletes_nothing(editor_client, avatars, actor):
    services.policy_update(
        policy=avatars,
        changes={"title": "Profile pictures"},
        version=1,
        actor=actor,
        reason="Rename.",
        rollback_note="Roll back.",
    )

    response = editor_client.post(
        url("uploadpolicy", "delete", avatars.pk), {"based_on_version": 1, **WHY}, follow=True
    )

    assert any("now version 2" in m for m in messages_of(response))
    assert UploadPolicy.objects.filter(pk=avatars.pk).exists()


def test_deleting_a_policy_in_use_is_refused(editor_client, default_policy, owner):
    Upload.objects.create(
        owner=owner,
        policy=default_policy,
        stored_name="abc",
        original_name="a.png",
        size_bytes=1,
        sha256="0" * 64,
        content_type="image/png",
    )
    before = AuditEntry.objects.count()

    response = editor_client.post(
        url("uploadpolicy", "delete", default_policy.pk),
        {"based_on_version": 1, **WHY},
        follow=True,
    )

    assert response.status_code == HTTPStatus.OK
    assert any("referenced by stored uploads" in m for m in messages_of(response))
    assert UploadPolicy.objects.filter(pk=default_policy.pk).exists()
    assert AuditEntry.objects.count() == before


# --- Bulk delete -------------------------------------------------------------------------------


def test_the_stock_bulk_delete_is_not_offered(editor_client, avatars):
    page = editor_client.get(POLICY_LIST)
    choices = [name for name, _ in page.context["action_form"].fields["action"].choices]
    assert "delete_selected" not in choices
    assert "delete_with_reason" in choices

    response = editor_client.post(
        POLICY_LIST,
        {"action": "delete_selected", ACTION_CHECKBOX_NAME: [avatars.pk], "post": "yes"},
    )

    assert response.status_code in (HTTPStatus.OK, HTTPStatus.FOUND)
    assert UploadPolicy.objects.filter(pk=avatars.pk).exists()


def test_bulk_delete_asks_why_first_then_deletes_each(editor_client, avatars, rule, actor):
    other = services.policy_create(
        data={"slug": "scratch"}, actor=actor, reason="Try.", rollback_note="Delete it."
    )
    selected = {"action": "delete_with_reason", ACTION_CHECKBOX_NAME: [avatars.pk, other.pk]}
    before = AuditEntry.objects.count()

    confirm = editor_client.post(POLICY_LIST, {**selected, "index": 0})
    assert confirm.status_code == HTTPStatus.OK
    assert {row["obj"] for row in confirm.context["rows"]} == {avatars, other}
    shown = hidden_inputs(confirm)
    assert shown[f"version_{avatars.pk}"] == shown[f"version_{other.pk}"] == ["1"]
    unexplained = editor_client.post(POLICY_LIST, shown)
    assert unexplained.status_code == HTTPStatus.OK
    assert "reason" in unexplained.context["form"].errors
    assert UploadPolicy.objects.filter(pk__in=[avatars.pk, other.pk]).count() == 2
    assert AuditEntry.objects.count() == before

    done = editor_client.post(POLICY_LIST, {**shown, **WHY}, follow=True)

    assert done.status_code == HTTPStatus.OK
    assert not UploadPolicy.objects.filter(pk__in=[avatars.pk, other.pk]).exists()
    deletes = new_entries(before)
    assert sorted(e.object_repr for e in deletes) == ["avatars", "scratch"]
    assert {(e.action, e.reason, e.rollback_note, e.actor) for e in deletes} == {
        ("delete", WHY["reason"], WHY["rollback_note"], "user:editor")
    }


def test_bulk_delete_keeps_an_object_changed_after_the_confirmation_page(
    editor_client, avatars, actor
):
    other = services.policy_create(
        data={"slug": "scratch"}, actor=actor, reason="Try.", rollback_note="Delete it."
    )
    confirm = editor_client.post(
        POLICY_LIST,
        {"action": "delete_with_reason", ACTION_CHECKBOX_NAME: [avatars.pk, other.pk], "index": 0},
    )
    shown = hidden_inputs(confirm)
    services.policy_update(
        policy=avatars,
        changes={"title": "Profile pictures"},
        version=1,
        actor=actor,
        reason="Someone else's change.",
        rollback_note="Roll it back.",
    )
    before = AuditEntry.objects.count()

    done = editor_client.post(POLICY_LIST, {**shown, **WHY}, follow=True)

    assert UploadPolicy.objects.get(pk=avatars.pk).title == "Profile pictures"
    assert not UploadPolicy.objects.filter(pk=other.pk).exists()
    [entry] = new_entries(before)
    assert (entry.action, entry.object_repr, entry.reason) == ("delete", "scratch", WHY["reason"])
    assert any(
        m.startswith("avatars not deleted") and "it is now version 2" in m
        for m in messages_of(done)
    )


def test_bulk_delete_without_the_version_shown_keeps_that_object(editor_client, avatars, actor):
    missing, garbled = (
        avatars,
        services.policy_create(
            data={"slug": "scratch"}, actor=actor, reason="Try.", rollback_note="Delete it."
        ),
    )
    fine = services.policy_create(
        data={"slug": "spare"}, actor=actor, reason="Try.", rollback_note="Delete it."
    )
    confirm = editor_client.post(
        POLICY_LIST,
        {
            "action": "delete_with_reason",
            ACTION_CHECKBOX_NAME: [missing.pk, garbled.pk, fine.pk],
            "index": 0,
        },
    )
    shown = hidden_inputs(confirm)
    del shown[f"version_{missing.pk}"]
    shown[f"version_{garbled.pk}"] = ["one"]
    before = AuditEntry.objects.count()

    done = editor_client.post(POLICY_LIST, {**shown, **WHY}, follow=True)

    assert set(UploadPolicy.objects.filter(pk__in=[missing.pk, garbled.pk, fine.pk])) == {
        missing,
        garbled,
    }
    assert [e.object_repr for e in new_entries(before)] == ["spare"]
    refusals = [m for m in messages_of(done) if "did not say which version you saw" in m]
    assert sorted(m.split(" ")[0] for m in refusals) == ["avatars", "scratch"]


def test_bulk_delete_reports_a_policy_in_use_and_deletes_the_rest(
    editor_client, default_policy, avatars, owner
):
    Upload.objects.create(
        owner=owner,
        policy=default_policy,
        stored_name="abc",
        original_name="a.png",
        size_bytes=1,
        sha256="0" * 64,
        content_type="image/png",
    )
    selected = [default_policy.pk, avatars.pk]
    confirm = editor_client.post(
        POLICY_LIST,
        {"action": "delete_with_reason", ACTION_CHECKBOX_NAME: selected, "index": 0},
    )

    response = editor_client.post(POLICY_LIST, {**hidden_inputs(confirm), **WHY}, follow=True)

    assert any("default not deleted" in m for m in messages_of(response))
    assert list(UploadPolicy.objects.values_list("slug", flat=True)) == ["default"]


# --- History and rollback ----------------------------------------------------------------------


def _lower_max_size(policy: UploadPolicy, actor: Actor, size: int) -> AuditEntry:
    services.policy_update(
        policy=policy,
        changes={"max_file_size_bytes": size},
        version=UploadPolicy.objects.get(pk=policy.pk).version,
        actor=actor,
        reason=f"Lower to {size}.",
        rollback_note="Roll back.",
    )
    return entries_for("upload_policy", policy.pk)[-1]


def test_history_shows_the_diff_and_offers_rollback_of_the_latest_only(
    editor_client, default_policy, actor
):
    first = _lower_max_size(default_policy, actor, 8 * MIB)
    latest = _lower_max_size(default_policy, actor, 4 * MIB)

    response = editor_client.get(url("uploadpolicy", "history", default_policy.pk))

    assert response.status_code == HTTPStatus.OK
    body = response.content.decode()
    assert f"8 MiB ({8 * MIB} bytes)" in body
    assert f"4 MiB ({4 * MIB} bytes)" in body
    assert "Lower to 4194304." in body
    rows = response.context["rows"]
    assert [row["entry"].seq for row in rows][:2] == [latest.seq, first.seq]
    assert rows[0]["rollback_url"] == url("uploadpolicy", "rollback", default_policy.pk, latest.seq)
    assert [row["rollback_url"] for row in rows[1:]] == [""] * (len(rows) - 1)
    assert body.count("Roll back this change") == 1


def test_rolling_back_the_latest_change_from_history(editor_client, default_policy, actor):
    latest = _lower_max_size(default_policy, actor, 4 * MIB)
    rollback_url = url("uploadpolicy", "rollback", default_policy.pk, latest.seq)

    preview = editor_client.get(rollback_url)
    assert [(r.field, r.after) for r in preview.context["preview"]] == [
        ("max_file_size_bytes", f"10 MiB ({10 * MIB} bytes)")
    ]
    refused = editor_client.post(rollback_url, {"reason": ""})
    assert "reason" in refused.context["form"].errors
    assert AuditEntry.objects.count() == latest.seq
    done = editor_client.post(
        rollback_url, {"reason": "Too strict.", "rollback_note": "Lower it again."}, follow=True
    )

    assert done.status_code == HTTPStatus.OK
    default_policy.refresh_from_db()
    assert default_policy.max_file_size_bytes == 10 * MIB
    [rollback] = new_entries(latest.seq)
    assert (rollback.action, rollback.rolls_back_seq) == ("rollback", latest.seq)
    assert (rollback.reason, rollback.rollback_note) == ("Too strict.", "Lower it again.")
    assert rollback.diff == reversed_diff(latest.diff)
    assert rollback.diff == {"max_file_size_bytes": {"before": 4 * MIB, "after": 10 * MIB}}


def test_a_rollback_without_a_note_gets_one_naming_the_entry(editor_client, default_policy, actor):
    latest = _lower_max_size(default_policy, actor, 4 * MIB)

    editor_client.post(
        url("uploadpolicy", "rollback", default_policy.pk, latest.seq), {"reason": "Too strict."}
    )

    [rollback] = new_entries(latest.seq)
    assert rollback.rollback_note == (
        f"Roll back this entry to return to the state entry #{latest.seq} produced."
    )


def test_rolling_back_an_older_entry_is_refused(editor_client, default_policy, actor):
    older = _lower_max_size(default_policy, actor, 8 * MIB)
    later = _lower_max_size(default_policy, actor, 4 * MIB)
    before = AuditEntry.objects.count()
    rollback_url = url("uploadpolicy", "rollback", default_policy.pk, older.seq)

    preview = editor_client.get(rollback_url)
    response = editor_client.post(rollback_url, {"reason": "Undo."}, follow=True)

    assert f"#{later.seq}" in preview.content.decode()
    assert any(f"#{later.seq}" in m and "first" in m for m in messages_of(response))
    default_policy.refresh_from_db()
    assert default_policy.max_file_size_bytes == 4 * MIB
    assert AuditEntry.objects.count() == before


def test_rollback_of_another_objects_entry_is_not_found(editor_client, default_policy, avatars):
    [entry] = entries_for("upload_policy", avatars.pk)

    response = editor_client.get(url("uploadpolicy", "rollback", default_policy.pk, entry.seq))

    assert response.status_code == HTTPStatus.NOT_FOUND


def test_rollback_needs_the_change_permission(client, editor, default_policy, actor):
    latest = _lower_max_size(default_policy, actor, 4 * MIB)
    editor.groups.clear()
    editor.user_permissions.set(
        Permission.objects.filter(codename__in=["view_uploadpolicy", "view_auditentry"])
    )
    client.force_login(editor)

    history = client.get(url("uploadpolicy", "history", default_policy.pk))
    response = client.post(
        url("uploadpolicy", "rollback", default_policy.pk, latest.seq), {"reason": "Undo."}
    )

    assert history.status_code == HTTPStatus.OK
    assert history.context["rows"][0]["rollback_url"] == ""
    assert response.status_code == HTTPStatus.FORBIDDEN
    default_policy.refresh_from_db()
    assert default_policy.max_file_size_bytes == 4 * MIB


def test_recreating_needs_the_add_permission(client, editor, avatars, actor):
    services.policy_delete(
        policy=avatars, version=1, actor=actor, reason="Gone.", rollback_note="Roll back."
    )
    delete_entry = entries_for("upload_policy", avatars.pk)[-1]
    editor.groups.clear()
    editor.user_permissions.set(
        Permission.objects.filter(
            codename__in=["view_uploadpolicy", "change_uploadpolicy", "view_auditentry"]
        )
    )
    client.force_login(editor)

    response = client.post(url("auditentry", "rollback", delete_entry.pk), {"reason": "Back."})

    assert response.status_code == HTTPStatus.FORBIDDEN
    assert not UploadPolicy.objects.filter(pk=avatars.pk).exists()


def test_a_rollback_the_data_no_longer_allows_is_shown_on_the_page(editor_client, avatars, actor):
    services.policy_delete(
        policy=avatars, version=1, actor=actor, reason="Gone.", rollback_note="Roll back."
    )
    delete_entry = entries_for("upload_policy", avatars.pk)[-1]
    services.policy_create(
        data={"slug": "avatars"}, actor=actor, reason="A new one.", rollback_note="Delete it."
    )
    before = AuditEntry.objects.count()

    response = editor_client.post(
        url("auditentry", "rollback", delete_entry.pk), {"reason": "Bring it back."}
    )

    assert response.status_code == HTTPStatus.OK
    [error] = response.context["form"].non_field_errors()
    assert "slug" in error
    assert AuditEntry.objects.count() == before


def test_history_of_a_deleted_policy_offers_its_rollback(editor_client, avatars, actor):
    services.policy_delete(
        policy=avatars, version=1, actor=actor, reason="Gone.", rollback_note="Roll back."
    )
    delete_entry = entries_for("upload_policy", avatars.pk)[-1]

    response = editor_client.get(url("uploadpolicy", "history", avatars.pk))

    assert response.status_code == HTTPStatus.OK
    assert response.context["rows"][0]["rollback_url"] == url(
        "uploadpolicy", "rollback", avatars.pk, delete_entry.seq
    )


# --- The audit log -----------------------------------------------------------------------------


def test_audit_log_lists_and_filters(editor_client, default_policy, rule):
    response = editor_client.get(
        reverse("admin:policies_auditentry_changelist"), {"object_type": "header_rule"}
    )

    assert response.status_code == HTTPStatus.OK
    shown = {e.object_repr for e in response.context["cl"].result_list}
    assert "api" in shown
    assert "default" not in shown  # the upload policy's entries are filtered out
    assert response.context["action_form"] is None  # no actions at all


def test_audit_entry_page_shows_the_diff(editor_client, default_policy, actor):
    entry = _lower_max_size(default_policy, actor, 4 * MIB)

    response = editor_client.get(url("auditentry", "change", entry.pk))

    assert response.status_code == HTTPStatus.OK
    body = response.content.decode()
    assert f"4 MiB ({4 * MIB} bytes)" in body
    assert response.context["rollback_url"] == url("auditentry", "rollback", entry.pk)


def test_the_audit_log_cannot_be_added_changed_or_deleted(editor_client, default_policy):
    [entry] = entries_for("upload_policy", default_policy.pk)
    change_url = url("auditentry", "change", entry.pk)

    changed = editor_client.post(change_url, {"reason": "Rewritten history."})
    deleted = editor_client.post(url("auditentry", "delete", entry.pk), {"post": "yes"})
    added = editor_client.get(reverse("admin:policies_auditentry_add"))
    page = editor_client.get(change_url)

    assert changed.status_code == HTTPStatus.FORBIDDEN
    assert deleted.status_code == HTTPStatus.FORBIDDEN
    assert added.status_code == HTTPStatus.FORBIDDEN
    assert not page.context["has_change_permission"]
    assert not page.context["has_delete_permission"]
    entry.refresh_from_db()
    assert entry.reason == "Seed the default upload policy."
    assert AuditEntry.objects.filter(pk=entry.pk).exists()
