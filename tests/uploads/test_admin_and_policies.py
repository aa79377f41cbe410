"""Uploads in the admin (read-only, filterable), and what a policy must allow explicitly."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from django.contrib.auth.models import Permission

from policies.services import policy_create
from tests.uploads.http import file_part, multipart
from tests.uploads.test_pipeline import HTML
from uploads.models import Upload, UploadEvent

pytestmark = pytest.mark.django_db


def upload(client, name: str, content: bytes, policy: str = "default"):
    body, content_type = multipart(file_part(name, content))
    return client.post(f"/api/v1/uploads/?policy={policy}", body, content_type=content_type)


@pytest.fixture
def viewer(editor):
    editor.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_upload", "view_uploadevent"])
    )
    return editor


def test_the_admin_lists_uploads_and_events_read_only(signed_in, client, viewer):
    upload(signed_in, "notes.txt", b"hello\n")
    upload(signed_in, "page.txt", HTML)
    client.force_login(viewer)
    uploads = client.get("/admin/uploads/upload/")
    assert uploads.status_code == HTTPStatus.OK
    assert "notes.txt" in uploads.content.decode()
    assert "Add upload" not in uploads.content.decode()
    refused = client.get("/admin/uploads/uploadevent/?code__exact=type_not_allowed")
    page = refused.content.decode()
    assert "page.txt" in page
    assert "notes.txt" not in page
    event = UploadEvent.objects.get(code="accepted")
    detail = client.get(f"/admin/uploads/uploadevent/{event.pk}/change/")
    assert detail.status_code == HTTPStatus.OK
    assert 'name="_save"' not in detail.content.decode()  # nothing to save: read-only
    assert (
        client.post(f"/admin/uploads/upload/{Upload.objects.get().pk}/delete/").status_code == 403
    )


def test_markup_is_accepted_only_where_a_policy_allows_it(signed_in, upload_dirs, actor):
    assert upload(signed_in, "page.html", HTML).json()["code"] == "extension_not_allowed"
    policy_create(
        data={"slug": "pages", "allowed_types": ["text/html"], "allowed_extensions": ["html"]},
        actor=actor,
        reason="test",
        rollback_note="delete it",
    )
    response = upload(signed_in, "page.html", HTML, policy="pages")
    assert response.status_code == HTTPStatus.CREATED
    download = signed_in.get(f"/api/v1/uploads/{response.json()['id']}/download/")
    assert download["Content-Type"] == "text/html"
    assert download["Content-Disposition"].startswith("attachment;")  # never rendered
