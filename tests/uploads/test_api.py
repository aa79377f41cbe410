"""The uploads API around the pipeline: listing, details, downloads, deletes, who sees what,
and the limits a client can read before uploading."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from django.contrib.auth.models import Permission
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from policies.services import policy_create
from tests.uploads import make_images
from tests.uploads.http import file_part, multipart
from uploads.models import Upload, UploadStatus

pytestmark = pytest.mark.django_db


def upload(client, name: str, content: bytes, policy: str = "default"):
    body, content_type = multipart(file_part(name, content))
    response = client.post(f"/api/v1/uploads/?policy={policy}", body, content_type=content_type)
    assert response.status_code == HTTPStatus.CREATED, response.json()
    return response.json()


@pytest.fixture
def token_client(owner, upload_dirs):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=owner).key}")
    return client


@pytest.fixture
def other_client(other_user, upload_dirs):
    client = APIClient()
    client.force_login(other_user)
    return client


def test_a_token_client_uploads_and_reads_its_upload(token_client):
    created = upload(token_client, "notes.txt", b"hello\n")
    assert set(created) == {
        "id",
        "filename",
        "size",
        "sha256",
        "content_type",
        "policy",
        "created_at",
    }
    listed = token_client.get("/api/v1/uploads/").json()
    assert listed["count"] == 1
    assert listed["results"][0] == created
    assert token_client.get(f"/api/v1/uploads/{created['id']}/").json() == created


def test_another_users_upload_is_not_found(token_client, other_client):
    created = upload(token_client, "notes.txt", b"hello\n")
    for path in (f"/api/v1/uploads/{created['id']}/", f"/api/v1/uploads/{created['id']}/download/"):
        response = other_client.get(path)
        assert response.status_code == HTTPStatus.NOT_FOUND
        assert response.json()["code"] == "not_found"
    assert other_client.delete(f"/api/v1/uploads/{created['id']}/").status_code == 404
    assert other_client.get("/api/v1/uploads/").json()["count"] == 0
    assert Upload.objects.filter(status=UploadStatus.STORED).count() == 1


def test_staff_with_the_view_permission_see_every_upload(token_client, editor):
    created = upload(token_client, "notes.txt", b"hello\n")
    editor.user_permissions.add(Permission.objects.get(codename="view_upload"))
    staff = APIClient()
    staff.force_login(editor)
    assert staff.get("/api/v1/uploads/").json()["count"] == 1
    assert staff.get(f"/api/v1/uploads/{created['id']}/").status_code == HTTPStatus.OK
    response = staff.delete(f"/api/v1/uploads/{created['id']}/")
    assert response.status_code == HTTPStatus.FORBIDDEN  # seeing is not deleting
    assert response.json()["code"] == "permission_denied"


def test_deleting_removes_the_file_and_hides_the_upload(
    token_client, upload_dirs, django_capture_on_commit_callbacks
):
    created = upload(token_client, "notes.txt", b"hello\n")
    assert len(upload_dirs.stored_files()) == 1
    with django_capture_on_commit_callbacks(execute=True):  # the file goes once the row commits
        response = token_client.delete(f"/api/v1/uploads/{created['id']}/")
    assert response.status_code == HTTPStatus.NO_CONTENT
    assert upload_dirs.stored_files() == []
    assert Upload.objects.get(pk=created["id"]).status == UploadStatus.DELETED
    assert token_client.get(f"/api/v1/uploads/{created['id']}/").status_code == 404


def test_a_download_is_an_attachment_of_the_sniffed_type(token_client):
    created = upload(token_client, 'Grüße "final".txt', b"hello\n")
    response = token_client.get(
        f"/api/v1/uploads/{created['id']}/download/", HTTP_ACCEPT="application/octet-stream"
    )
    assert response.status_code == HTTPStatus.OK
    assert response["Content-Type"] == "text/plain"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Disposition"] == (
        'attachment; filename="Grue _final_.txt"; '
        "filename*=UTF-8''Gr%C3%BC%C3%9Fe%20%22final%22.txt"
    )
    assert b"".join(response.streaming_content) == b"hello\n"


def test_re_encoded_images_are_inline_only_when_the_policy_says_so(token_client, actor):
    policy_create(
        data={
            "slug": "avatars",
            "allowed_types": ["image/png"],
            "allowed_extensions": ["png"],
            "serve_images_inline": True,
        },
        actor=actor,
        reason="test",
        rollback_note="delete it",
    )
    avatar = upload(token_client, "me.png", make_images.benign_png(), policy="avatars")
    photo = upload(token_client, "me.png", make_images.benign_png())
    inline = token_client.get(f"/api/v1/uploads/{avatar['id']}/download/")
    attached = token_client.get(f"/api/v1/uploads/{photo['id']}/download/")
    assert inline["Content-Disposition"] == 'inline; filename="me.png"'
    assert attached["Content-Disposition"] == 'attachment; filename="me.png"'
    assert inline["Content-Type"] == "image/png"


def test_clients_read_the_limits_of_the_policies_they_may_use(token_client, actor):
    policy_create(
        data={"slug": "staff-only", "upload_access": "staff"},
        actor=actor,
        reason="test",
        rollback_note="delete it",
    )
    policies = token_client.get("/api/v1/upload-policies/").json()
    assert [p["slug"] for p in policies] == ["default"]
    assert policies[0]["max_file_size_bytes"] == 10 * 1024 * 1024
    assert "image/png" in policies[0]["allowed_types"]


def test_anonymous_callers_read_nothing(client):
    for path in ("/api/v1/uploads/", "/api/v1/upload-policies/"):
        response = client.get(path)
        assert response.status_code == HTTPStatus.UNAUTHORIZED
        assert response.json()["code"] == "not_authenticated"
