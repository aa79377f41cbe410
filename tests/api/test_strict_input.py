"""Malformed parameters and wrongly typed fields are refused with a validation_error naming
them, never quietly read as something else (each of these was accepted before the API was
checked against its own description)."""

from __future__ import annotations

from http import HTTPStatus

import pytest

from policies.models import AuditEntry, HeaderRule, UploadPolicy
from tests.uploads.ops import api_upload, token_client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_api(django_user_model):
    staff = django_user_model.objects.create_superuser("root", "root@example.com", "x" * 24)
    return token_client_for(staff)


def refused_field(response) -> str:
    assert response.status_code == HTTPStatus.BAD_REQUEST, response.content
    body = response.json()
    assert body["code"] == "validation_error"
    return next(iter(body["fields"]))


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=ten", "limit"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("offset=-1", "offset"),
        ("offset=null", "offset"),
        ("since=", "since"),
        ("until=yesterday", "until"),
        ("object_type=user", "object_type"),
        ("since=0001-01-01T00:00:00%2B14:00", "since"),
        ("until=9999-12-31T23:59:59-14:00", "until"),
        ("action=", "action"),
    ],
)
def test_a_malformed_list_parameter_is_refused_by_name(staff_api, query, field):
    assert refused_field(staff_api.get(f"/api/v1/audit/?{query}")) == field


def test_good_list_parameters_still_page_and_filter(staff_api):
    newest = AuditEntry.objects.filter(object_type="upload_policy").order_by("-seq").first()
    page = staff_api.get("/api/v1/audit/?limit=1&offset=0&object_type=upload_policy").json()
    assert [entry["seq"] for entry in page["results"]] == [newest.seq]
    assert page["count"] == AuditEntry.objects.filter(object_type="upload_policy").count()


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("path=/&https=maybe", "https"),
        ("path=/&signed_in=2", "signed_in"),
        ("path=%20/admin/", "path"),
        ("path=/&host=exa%20mple.com", "host"),
        ("path=/&host=example.com:1234567", "host"),
    ],
)
def test_the_preview_refuses_what_its_description_does_not_allow(staff_api, query, field):
    assert refused_field(staff_api.get(f"/api/v1/headers/preview/?{query}")) == field


def test_the_preview_takes_false_as_plain_http(staff_api):
    def hsts_note(https: str) -> str:
        rows = staff_api.get(f"/api/v1/headers/preview/?path=/&https={https}").json()
        return next(row["note"] for row in rows if row["header"] == "Strict-Transport-Security")

    assert hsts_note("false") == "not sent: HTTPS only"
    assert hsts_note("true") == ""


@pytest.mark.parametrize(
    ("field", "value"),
    [("reason", 0.0), ("rollback_note", 7), ("title", False), ("max_file_size_bytes", "1024")],
)
def test_a_field_of_the_wrong_json_type_is_refused(staff_api, field, value):
    policy = UploadPolicy.objects.get(slug="default")
    body = {
        "version": policy.version,
        "reason": "smaller",
        "rollback_note": "back",
        field: value,
    }
    response = staff_api.patch(f"/api/v1/upload-policies/{policy.pk}/", body, format="json")
    assert refused_field(response) == field
    policy.refresh_from_db()
    assert policy.max_file_size_bytes == 10 * 1024 * 1024


def test_policy_writes_take_json_only(staff_api):
    response = staff_api.post(
        "/api/v1/upload-policies/",
        {"slug": "form", "reason": "r", "rollback_note": "n"},
        format="multipart",
    )
    assert response.status_code == HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    assert response.json()["code"] == "unsupported_media_type"
    assert not UploadPolicy.objects.filter(slug="form").exists()


@pytest.mark.parametrize(
    ("key", "accepted"),
    [
        ('"  spaced inside quotes  "', True),
        ("bare-key-1", True),
        (" leading-space", False),
        ('""', True),  # two quote characters, bare: a key like any other
        ("x" * 256, False),
    ],
)
def test_the_idempotency_key_header_follows_its_pattern(owner, upload_dirs, key, accepted):
    response = api_upload(token_client_for(owner), "a.txt", b"one\n", HTTP_IDEMPOTENCY_KEY=key)
    if accepted:
        assert response.status_code == HTTPStatus.CREATED, response.json()
    else:
        assert response.status_code == HTTPStatus.BAD_REQUEST
        assert response.json()["code"] == "bad_request"
        assert "Idempotency-Key" in response.json()["detail"]


def test_an_offset_the_database_would_refuse_is_read_in_utc(staff_api):
    # Python takes +18:52; PostgreSQL refuses offsets beyond ±15:59 (a 500 before).
    response = staff_api.get("/api/v1/audit/?since=2026-01-30T11:57:18%2B18:52")
    assert response.status_code == HTTPStatus.OK


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/audit/?actor=%00",
        "/api/v1/upload-events/?user=a%00b",
        "/api/v1/uploads/?policy=%00",
    ],
)
def test_a_nul_in_the_address_is_a_bad_request(staff_api, url):
    response = staff_api.get(url)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["code"] == "bad_request"


def test_a_nul_in_a_page_address_is_a_bad_request(client):
    assert client.get("/upload/a%00b/").status_code == HTTPStatus.BAD_REQUEST


@pytest.mark.parametrize(
    ("if_match", "status"),
    [
        ('W/"1"', HTTPStatus.BAD_REQUEST),
        ('"1', HTTPStatus.BAD_REQUEST),
        ('"' + "9" * 5000 + '"', HTTPStatus.BAD_REQUEST),
        ('"2"', HTTPStatus.CONFLICT),
        ("1", HTTPStatus.NO_CONTENT),
    ],
)
def test_if_match_is_a_strong_version_tag(staff_api, if_match, status):
    rule = HeaderRule.objects.order_by("pk").first()
    assert rule.version == 1
    response = staff_api.delete(
        f"/api/v1/header-rules/{rule.pk}/?reason=r&rollback_note=n", HTTP_IF_MATCH=if_match
    )
    assert response.status_code == status
    assert HeaderRule.objects.filter(pk=rule.pk).exists() is (status != HTTPStatus.NO_CONTENT)
