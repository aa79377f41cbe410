"""The audit log over the API: who may read it, its filters, an entry's detail, rollback (and its
conflict), and the chain check — never a 500, never HTML."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from rest_framework.test import APIClient

from policies.models import AuditEntry, UploadPolicy
from policies.services import policy_create, policy_update
from tests.uploads.ops import token_client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def changed_policy(actor):
    """A policy created, then lowered to 1 MiB: entries N (create) and N+1 (update)."""
    policy = policy_create(
        data={"slug": "reports"}, actor=actor, reason="new target", rollback_note="delete it"
    )
    return policy_update(
        policy=policy,
        changes={"max_file_size_bytes": 1024 * 1024, "max_request_bytes": 2 * 1024 * 1024},
        version=policy.version,
        actor=actor,
        reason="smaller files only",
        rollback_note="raise it back to 10 MiB",
    )


@pytest.fixture
def editor_api(editor):
    return token_client_for(editor)


def latest_entry() -> AuditEntry:
    return AuditEntry.objects.order_by("-seq").first()


def test_who_may_read_the_audit_log(client, owner, editor_api, django_user_model):
    assert client.get("/api/v1/audit/").status_code == HTTPStatus.UNAUTHORIZED
    plain = token_client_for(owner).get("/api/v1/audit/")
    assert plain.status_code == HTTPStatus.FORBIDDEN
    assert plain.json()["code"] == "permission_denied"
    staff = django_user_model.objects.create_user("staffer", is_staff=True)
    assert token_client_for(staff).get("/api/v1/audit/").status_code == HTTPStatus.FORBIDDEN
    assert editor_api.get("/api/v1/audit/").status_code == HTTPStatus.OK


def test_the_list_filters_and_pages(editor_api, changed_policy):
    listed = editor_api.get(
        "/api/v1/audit/",
        {"object_type": "upload_policy", "object_id": str(changed_policy.pk)},
    ).json()
    assert [e["action"] for e in listed["results"]] == ["update", "create"]
    assert listed["results"][0]["reason"] == "smaller files only"
    assert "before" not in listed["results"][0]
    updates = editor_api.get("/api/v1/audit/", {"action": "update", "actor": "user:editor"})
    assert [e["object_repr"] for e in updates.json()["results"]] == ["reports"]
    paged = editor_api.get("/api/v1/audit/", {"limit": 1}).json()
    assert len(paged["results"]) == 1
    assert paged["count"] == AuditEntry.objects.count()
    future = editor_api.get("/api/v1/audit/", {"since": "2999-01-01T00:00:00Z"}).json()
    assert future["results"] == []


def test_a_bad_date_filter_is_a_clear_400(editor_api):
    response = editor_api.get("/api/v1/audit/", {"since": "yesterday"})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["code"] == "validation_error"
    assert "since" in response.json()["fields"]


def test_an_entry_shows_before_after_and_diff(editor_api, changed_policy):
    entry = latest_entry()
    detail = editor_api.get(f"/api/v1/audit/{entry.seq}/").json()
    assert detail["before"]["max_file_size_bytes"] == 10 * 1024 * 1024
    assert detail["after"]["max_file_size_bytes"] == 1024 * 1024
    assert detail["diff"]["max_file_size_bytes"] == entry.diff["max_file_size_bytes"]
    assert set(detail["diff"]["max_file_size_bytes"].values()) == {10485760, 1048576}
    missing = editor_api.get("/api/v1/audit/999999/")
    assert missing.status_code == HTTPStatus.NOT_FOUND
    assert missing.json()["code"] == "not_found"


def test_rolling_back_restores_the_policy_as_a_new_audited_entry(editor_api, changed_policy):
    entry = latest_entry()
    response = editor_api.post(
        f"/api/v1/audit/{entry.seq}/rollback/", {"reason": "too strict"}, format="json"
    )
    assert response.status_code == HTTPStatus.CREATED
    rollback = response.json()
    assert (rollback["action"], rollback["rolls_back_seq"]) == ("rollback", entry.seq)
    assert rollback["actor"] == "user:editor"
    assert UploadPolicy.objects.get(slug="reports").max_file_size_bytes == 10 * 1024 * 1024
    older = editor_api.post(
        f"/api/v1/audit/{entry.seq}/rollback/", {"reason": "again"}, format="json"
    )
    assert older.status_code == HTTPStatus.CONFLICT
    assert older.json()["code"] == "rollback_conflict"
    assert latest_entry().seq == rollback["seq"]  # the conflict wrote nothing


def test_a_rollback_needs_a_reason_and_the_change_permission(
    editor_api, owner, changed_policy, django_user_model
):
    entry = latest_entry()
    no_reason = editor_api.post(f"/api/v1/audit/{entry.seq}/rollback/", {}, format="json")
    assert no_reason.status_code == HTTPStatus.BAD_REQUEST
    assert "reason" in no_reason.json()["fields"]
    reader = django_user_model.objects.create_user("reader")
    reader.user_permissions.add(Permission.objects.get(codename="view_auditentry"))
    refused = token_client_for(reader).post(
        f"/api/v1/audit/{entry.seq}/rollback/", {"reason": "x"}, format="json"
    )
    assert refused.status_code == HTTPStatus.FORBIDDEN
    assert latest_entry().seq == entry.seq
    assert UploadPolicy.objects.get(slug="reports").max_file_size_bytes == 1024 * 1024


def test_the_chain_check_reports_the_head(editor_api, changed_policy):
    result = editor_api.get("/api/v1/audit/verify/").json()
    assert result["ok"] is True
    assert result["count"] == AuditEntry.objects.count()
    assert result["head_hash"] == latest_entry().entry_hash
    with connection.cursor() as cursor:  # an edit behind the app's back, straight in SQL
        cursor.execute(
            "UPDATE policies_auditentry SET reason = %s WHERE seq = %s",
            ["nothing to see", latest_entry().seq],
        )
    broken = editor_api.get("/api/v1/audit/verify/").json()
    assert broken["ok"] is False
    assert "altered" in broken["problem"]


def test_session_clients_need_csrf_for_a_rollback(editor, changed_policy):
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(editor)
    response = browser.post(
        f"/api/v1/audit/{latest_entry().seq}/rollback/", {"reason": "x"}, format="json"
    )
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert response["Content-Type"].startswith("application/json")
