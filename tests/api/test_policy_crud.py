"""Upload policies and header rules over the API: every write audited, versions checked, model
permissions enforced; plain callers see only the limits of the policies they may use."""

from __future__ import annotations

from http import HTTPStatus

import pytest

from policies.models import AuditEntry, HeaderRule, UploadPolicy
from tests.uploads.ops import token_client_for

pytestmark = pytest.mark.django_db

WHY = {"reason": "mobile app uploads", "rollback_note": "delete the policy"}


@pytest.fixture
def editor_api(editor):
    return token_client_for(editor)


def entries() -> int:
    return AuditEntry.objects.count()


def test_an_editor_creates_reads_changes_and_deletes_a_policy(editor_api):
    before = entries()
    created = editor_api.post(
        "/api/v1/upload-policies/",
        {"slug": "mobile", "allowed_types": ["image/png"], "allowed_extensions": ["png"], **WHY},
        format="json",
    )
    assert created.status_code == HTTPStatus.CREATED, created.json()
    policy = created.json()
    assert (policy["slug"], policy["version"]) == ("mobile", 1)
    assert entries() == before + 1
    url = f"/api/v1/upload-policies/{policy['id']}/"
    assert editor_api.get(url).json() == policy

    changed = editor_api.patch(
        url,
        {
            "max_file_size_bytes": 1024 * 1024,
            "version": 1,
            "reason": "smaller",
            "rollback_note": "back to 10 MiB",
        },
        format="json",
    )
    assert changed.status_code == HTTPStatus.OK, changed.json()
    assert (changed.json()["max_file_size_bytes"], changed.json()["version"]) == (1048576, 2)
    entry = AuditEntry.objects.order_by("-seq").first()
    assert (entry.action, entry.reason, entry.actor) == ("update", "smaller", "user:editor")

    round_trip = {
        **changed.json(),
        "title": "Mobile",
        "reason": "name it",
        "rollback_note": "clear it",
    }
    assert editor_api.put(url, round_trip, format="json").json()["title"] == "Mobile"

    deleted = editor_api.delete(
        f"{url}?reason=retired&rollback_note=roll+back+the+deletion", HTTP_IF_MATCH='"3"'
    )
    assert deleted.status_code == HTTPStatus.NO_CONTENT
    assert not UploadPolicy.objects.filter(slug="mobile").exists()
    assert AuditEntry.objects.order_by("-seq").first().action == "delete"


def test_a_stale_version_is_a_conflict_naming_the_current_one(editor_api, default_policy):
    url = f"/api/v1/upload-policies/{default_policy.pk}/"
    stale = editor_api.patch(
        url, {"title": "x", "version": default_policy.version + 5, **WHY}, format="json"
    )
    assert stale.status_code == HTTPStatus.CONFLICT
    assert stale.json()["code"] == "version_conflict"
    assert stale.json()["current_version"] == default_policy.version
    gone = editor_api.delete(f"{url}?reason=x&rollback_note=y", HTTP_IF_MATCH='"99"')
    assert gone.status_code == HTTPStatus.CONFLICT
    assert UploadPolicy.objects.filter(pk=default_policy.pk).exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "x", "version": 1, "rollback_note": "y"}, "reason"),
        ({"title": "x", "reason": "r", "rollback_note": "y"}, "version"),
        ({"nonsense": 1, "version": 1, **WHY}, "nonsense"),
        ({"max_file_size_bytes": 0, "version": 1, **WHY}, "max_file_size_bytes"),
    ],
)
def test_bad_writes_are_field_errors_and_change_nothing(editor_api, default_policy, body, field):
    before = entries()
    response = editor_api.patch(
        f"/api/v1/upload-policies/{default_policy.pk}/", body, format="json"
    )
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["code"] == "validation_error"
    assert field in response.json()["fields"]
    assert entries() == before


def test_a_delete_without_if_match_or_reason_is_refused(editor_api, default_policy):
    url = f"/api/v1/upload-policies/{default_policy.pk}/"
    assert editor_api.delete(f"{url}?reason=x&rollback_note=y").status_code == 400
    assert editor_api.delete(url, HTTP_IF_MATCH='"1"').status_code == 400
    assert UploadPolicy.objects.filter(pk=default_policy.pk).exists()


def test_plain_users_read_only_the_limits_of_policies_they_may_use(owner, actor, default_policy):
    from tests.uploads.ops import make_policy

    staff_only = make_policy(actor, "staff-only", upload_access="staff")
    api = token_client_for(owner)
    listed = api.get("/api/v1/upload-policies/").json()
    assert [p["slug"] for p in listed] == ["default"]
    assert "owner" not in listed[0]  # limits, not the whole policy
    assert api.get(f"/api/v1/upload-policies/{staff_only.pk}/").status_code == 404
    write = api.patch(
        f"/api/v1/upload-policies/{default_policy.pk}/", {"version": 1, **WHY}, format="json"
    )
    assert write.status_code == HTTPStatus.FORBIDDEN


def test_anonymous_callers_are_told_to_authenticate(client):
    for path in ("/api/v1/upload-policies/", "/api/v1/header-rules/"):
        response = client.get(path)
        assert response.status_code == HTTPStatus.UNAUTHORIZED
        assert response.json()["code"] == "not_authenticated"


def test_header_rules_need_their_permissions(owner, editor_api, django_user_model):
    assert token_client_for(owner).get("/api/v1/header-rules/").status_code == 403
    staff = django_user_model.objects.create_user("staffer", is_staff=True)
    assert token_client_for(staff).get("/api/v1/header-rules/").status_code == 403
    names = [r["name"] for r in editor_api.get("/api/v1/header-rules/").json()]
    assert set(names) == set(HeaderRule.objects.values_list("name", flat=True))


def test_a_header_value_with_a_line_break_is_a_field_error(editor_api):
    before = entries()
    response = editor_api.post(
        "/api/v1/header-rules/",
        {
            "name": "injected",
            "path": "/x/",
            "match_type": "prefix",
            "custom_headers": {"X-Test": "ok\r\nSet-Cookie: evil=1"},
            **WHY,
        },
        format="json",
    )
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["code"] == "validation_error"
    assert "custom_headers" in response.json()["fields"]
    assert not HeaderRule.objects.filter(name="injected").exists()
    assert entries() == before


def test_an_editor_changes_a_rule_and_it_is_audited(editor_api):
    rule = HeaderRule.objects.get(name="site-wide")
    response = editor_api.patch(
        f"/api/v1/header-rules/{rule.pk}/",
        {"referrer_policy": "no-referrer", "version": rule.version, **WHY},
        format="json",
    )
    assert response.status_code == HTTPStatus.OK, response.json()
    assert HeaderRule.objects.get(pk=rule.pk).referrer_policy == "no-referrer"
    assert AuditEntry.objects.order_by("-seq").first().object_repr == "site-wide"


def test_a_policy_with_stored_files_cannot_be_deleted(
    editor_api, owner, default_policy, upload_dirs
):
    from tests.uploads.ops import api_upload

    assert api_upload(token_client_for(owner), "a.txt", b"hi\n").status_code == 201
    before = entries()
    response = editor_api.delete(
        f"/api/v1/upload-policies/{default_policy.pk}/?reason=x&rollback_note=y",
        HTTP_IF_MATCH=f'"{default_policy.version}"',
    )
    assert response.status_code == HTTPStatus.CONFLICT
    assert response.json()["code"] == "policy_in_use"
    assert UploadPolicy.objects.filter(pk=default_policy.pk).exists()
    assert entries() == before
