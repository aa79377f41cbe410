"""Upload events (and their summary), CSP reports and the header preview over the API: each
needs its view permission; the preview says what the admin's preview and the command say."""

from __future__ import annotations

from datetime import timedelta
from http import HTTPStatus
from io import StringIO

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.utils import timezone

from policies.headers import rule_sets
from policies.services import rule_create
from tests.headers.test_csp_reports import post as post_report
from tests.headers.test_csp_reports import report_uri_body
from tests.uploads.ops import api_upload, make_policy, token_client_for
from uploads.models import UploadEvent

pytestmark = pytest.mark.django_db


def granted(user, *codenames: str):
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return token_client_for(user)


@pytest.fixture
def events(owner, upload_dirs):
    """Two accepted uploads and one refusal by the owner, under the default policy."""
    client = token_client_for(owner)
    api_upload(client, "a.txt", b"one\n")
    api_upload(client, "b.txt", b"two\n")
    api_upload(client, "c.exe", b"MZ\x90\x00")
    return list(UploadEvent.objects.order_by("id"))


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/upload-events/",
        "/api/v1/upload-events/summary/?since=2026-01-01T00:00:00Z",
        "/api/v1/csp-reports/",
        "/api/v1/headers/preview/?path=/",
    ],
)
def test_each_report_needs_its_view_permission(client, owner, editor, path, django_user_model):
    assert client.get(path).status_code == HTTPStatus.UNAUTHORIZED
    plain = token_client_for(owner).get(path)
    assert plain.status_code == HTTPStatus.FORBIDDEN
    assert plain.json()["code"] == "permission_denied"
    staff = django_user_model.objects.create_user("staffer", is_staff=True)
    assert token_client_for(staff).get(path).status_code == HTTPStatus.FORBIDDEN
    allowed = granted(owner, "view_uploadevent", "view_cspreport", "view_headerrule")
    assert allowed.get(path).status_code == HTTPStatus.OK


def test_upload_events_filter_by_code_user_and_date(owner, events):
    api = granted(owner, "view_uploadevent")
    accepted = api.get("/api/v1/upload-events/", {"code": "accepted", "user": "owner"}).json()
    assert [e["filename"] for e in accepted["results"]] == ["b.txt", "a.txt"]
    assert accepted["results"][0]["policy"] == "default"
    refused = api.get("/api/v1/upload-events/", {"code": "extension_not_allowed"}).json()
    assert [e["filename"] for e in refused["results"]] == ["c.exe"]
    UploadEvent.objects.filter(filename="a.txt").update(
        created_at=timezone.now() - timedelta(days=3)
    )
    since = (timezone.now() - timedelta(days=1)).isoformat()
    recent = api.get("/api/v1/upload-events/", {"since": since}).json()
    assert {e["filename"] for e in recent["results"]} == {"b.txt", "c.exe"}
    bad = api.get("/api/v1/upload-events/", {"until": "soon"})
    assert bad.status_code == HTTPStatus.BAD_REQUEST
    assert bad.json()["code"] == "validation_error"


def test_the_summary_counts_per_code_and_policy_since_a_time(owner, events):
    api = granted(owner, "view_uploadevent")
    since = (timezone.now() - timedelta(hours=1)).isoformat()
    summary = api.get("/api/v1/upload-events/summary/", {"since": since}).json()
    assert summary == {
        "total": 3,
        "by_code": {"accepted": 2, "extension_not_allowed": 1},
        "by_policy": {"default": 3},
    }
    missing = api.get("/api/v1/upload-events/summary/")
    assert missing.status_code == HTTPStatus.BAD_REQUEST
    assert "since" in missing.json()["fields"]


def test_csp_reports_are_listed_as_aggregated(owner, client, settings):
    settings.ALLOWED_HOSTS = ["testserver", "example.com"]
    for _ in range(2):
        assert post_report(client, report_uri_body()).status_code == HTTPStatus.NO_CONTENT
    listed = granted(owner, "view_cspreport").get("/api/v1/csp-reports/").json()
    assert listed["count"] == 1
    row = listed["results"][0]
    assert (row["document_path"], row["directive"], row["count"]) == ("/page", "script-src-elem", 2)


def test_the_preview_matches_the_command(owner):
    api = granted(owner, "view_headerrule")
    rows = api.get("/api/v1/headers/preview/", {"path": "/admin/"}).json()
    printed = StringIO()
    call_command("headers_preview", "/admin/", stdout=printed)
    for row in rows:
        assert f"{row['header']}: {row['value']}" in printed.getvalue()
    assert len(rows) == len(printed.getvalue().strip().splitlines())
    csp = next(r for r in rows if r["header"] == "Content-Security-Policy")
    assert csp["source"] == "admin"


def test_the_preview_refuses_a_path_without_a_slash(owner):
    response = granted(owner, "view_headerrule").get("/api/v1/headers/preview/", {"path": "x"})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["code"] == "validation_error"
    assert "path" in response.json()["fields"]


def test_upload_events_filter_by_policy_and_before_a_time(owner, actor, events):
    make_policy(actor, "notes")
    api_upload(token_client_for(owner), "n.txt", b"note\n", policy="notes")
    api = granted(owner, "view_uploadevent")
    notes = api.get("/api/v1/upload-events/", {"policy": "notes"}).json()
    assert [e["filename"] for e in notes["results"]] == ["n.txt"]
    UploadEvent.objects.filter(filename="a.txt").update(
        created_at=timezone.now() - timedelta(days=3)
    )
    until = (timezone.now() - timedelta(days=1)).isoformat()
    older = api.get("/api/v1/upload-events/", {"until": until}).json()
    assert [e["filename"] for e in older["results"]] == ["a.txt"]


def test_the_preview_for_a_host_matches_the_command(owner, actor, settings):
    settings.ALLOWED_HOSTS = ["testserver", "shop.example.com", "other.example.com"]
    rule_create(
        data={
            "name": "shop",
            "host": "shop.example.com",
            "path": "/",
            "priority": 900,
            "custom_headers": {"X-Shop": "yes"},
        },
        actor=actor,
        reason="x",
        rollback_note="y",
    )
    rule_sets.clear()
    api = granted(owner, "view_headerrule")
    for host, expected in (("shop.example.com", True), ("other.example.com", False)):
        rows = api.get("/api/v1/headers/preview/", {"path": "/", "host": host}).json()
        printed = StringIO()
        call_command("headers_preview", "/", "--host", host, stdout=printed)
        assert ("X-Shop: yes" in printed.getvalue()) is expected
        assert any(r["header"] == "X-Shop" for r in rows) is expected
        assert len(rows) == len(printed.getvalue().strip().splitlines())
