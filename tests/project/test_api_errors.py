"""The API's authentication and its one error shape: `{"code", "detail", ...}` for every failure."""

from __future__ import annotations

import re
from http import HTTPStatus

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.middleware.csrf import REASON_NO_CSRF_COOKIE
from django.test import Client
from rest_framework.authtoken.models import Token

from project.errors import ERROR_STATUS

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.project.urls")]


def assert_error(response, code: str, **extra) -> dict:
    """A JSON error body with a known code, its contract status, a sentence, and `extra` keys."""
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["code"] == code
    assert code in ERROR_STATUS
    assert response.status_code == ERROR_STATUS[code]
    assert isinstance(body["detail"], str)
    assert body["detail"].strip()
    for key, value in extra.items():
        assert body[key] == value
    return body


def _files(count: int) -> list[SimpleUploadedFile]:
    return [SimpleUploadedFile(f"f{n}.txt", b"hello", "text/plain") for n in range(count)]


# Authentication


def test_an_anonymous_call_is_401_and_says_how_to_authenticate(client):
    response = client.get("/api/v1/")
    assert_error(response, "not_authenticated")
    assert response["WWW-Authenticate"] == "Token"


def test_a_token_authenticates(client, owner):
    token = Token.objects.create(user=owner)
    response = client.get("/api/v1/", headers={"Authorization": f"Token {token.key}"})
    assert response.status_code == HTTPStatus.OK
    assert response.json() == {"user": "owner", "version": "v1"}


def test_a_wrong_token_is_401_authentication_failed(client, owner):
    Token.objects.create(user=owner)
    response = client.get("/api/v1/", headers={"Authorization": "Token " + "0" * 40})
    assert_error(response, "authentication_failed")
    assert response["WWW-Authenticate"] == "Token"


def test_a_session_authenticates(client, owner):
    client.force_login(owner)
    assert client.get("/api/v1/").json()["user"] == "owner"


def test_a_session_post_without_csrf_token_is_refused(owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    response = client.post("/api/test/session/", {}, content_type="application/json")
    body = assert_error(response, "permission_denied")
    assert "CSRF" in body["detail"]


def test_a_session_post_with_csrf_token_passes(owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    token = client.get("/accounts/login/").cookies["csrftoken"].value
    response = client.post(
        "/api/test/session/", {}, content_type="application/json", headers={"X-CSRFToken": token}
    )
    assert response.status_code == HTTPStatus.OK
    assert response.json() == {"user": "owner"}


def test_a_token_post_needs_no_csrf_token(owner):
    client = Client(enforce_csrf_checks=True)
    token = Token.objects.create(user=owner)
    response = client.post(
        "/api/test/session/",
        {},
        content_type="application/json",
        headers={"Authorization": f"Token {token.key}"},
    )
    assert response.status_code == HTTPStatus.OK


def test_the_api_speaks_only_json(client, owner):
    client.force_login(owner)
    response = client.get("/api/v1/", headers={"Accept": "text/html"})
    assert_error(response, "not_acceptable")
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    response = client.get("/api/v1/", headers={"Accept": browser})
    assert response.status_code == HTTPStatus.OK
    assert response["Content-Type"] == "application/json"


# Exceptions raised in API views


def test_a_drf_validation_error_is_400_with_fields(client):
    response = client.get("/api/test/raise/drf_validation/")
    assert_error(
        response,
        "validation_error",
        detail="This field is required.",
        fields={"name": ["This field is required."]},
    )


def test_a_django_validation_error_is_400_with_fields(client):
    response = client.get("/api/test/raise/django_validation/")
    assert_error(response, "validation_error", fields={"max_size_bytes": ["Must be positive."]})


def test_a_django_validation_error_without_a_field_is_a_non_field_error(client):
    response = client.get("/api/test/raise/django_validation_plain/")
    assert_error(
        response,
        "validation_error",
        detail="The two limits disagree.",
        fields={"non_field_errors": ["The two limits disagree."]},
    )


def test_http404_is_not_found(client):
    assert_error(client.get("/api/test/raise/http404/"), "not_found")


def test_django_permission_denied_is_permission_denied(client):
    assert_error(client.get("/api/test/raise/permission_denied/"), "permission_denied")


def test_a_policy_conflict_is_409_with_the_current_version(client):
    response = client.get("/api/test/raise/version_conflict/")
    assert_error(
        response,
        "version_conflict",
        detail="The policy changed since you read it.",
        current_version=3,
    )


def test_throttled_says_when_to_retry(client):
    response = client.get("/api/test/raise/throttled/")
    assert_error(response, "throttled", retry_after=5)
    assert response["Retry-After"] == "5"


def test_an_unexpected_exception_is_a_json_500(client):
    client.raise_request_exception = False
    response = client.get("/api/test/raise/runtime/")
    body = assert_error(response, "server_error")
    assert "boom" not in body["detail"]
    assert "X-Request-ID" in body["detail"]
    assert response["X-Request-ID"]


def test_a_bare_api_exception_still_answers_a_code_of_ours(client):
    client.raise_request_exception = False
    assert_error(client.get("/api/test/raise/bare_api_exception/"), "server_error")


def test_a_drf_code_we_do_not_list_falls_back_to_the_exceptions_own(client):
    response = client.get("/api/test/raise/custom_code/")
    assert_error(response, "permission_denied", detail="Only the owner may.")


def test_a_wrong_method_is_405(client):
    response = client.post("/api/test/raise/http404/")
    assert_error(response, "method_not_allowed")
    assert "GET" in response["Allow"]


def test_malformed_json_is_a_parse_error(client):
    response = client.post("/api/test/echo/", "{not json", content_type="application/json")
    assert_error(response, "parse_error")


def test_an_unsupported_body_type_is_415(client):
    response = client.post("/api/test/echo/", "a,b", content_type="text/csv")
    assert_error(response, "unsupported_media_type")


def test_the_echo_view_parses_good_json(client):
    response = client.post("/api/test/echo/", {"a": 1}, content_type="application/json")
    assert response.json() == {"keys": ["a"], "files": 0}


# What never reaches DRF, under /api/


def test_an_unknown_api_url_is_a_json_404(client):
    assert_error(client.get("/api/v1/nope/"), "not_found")


@pytest.mark.parametrize("url", ["/api/test/echo/", "/api/test/form/"])
def test_too_many_files_is_a_json_400(client, settings, url):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 2
    assert client.post(url, {"file": _files(2)}).json()["files"] == 2
    assert_error(client.post(url, {"file": _files(3)}), "too_many_files")


@pytest.mark.parametrize("url", ["/api/test/echo/", "/api/test/form/"])
def test_a_body_over_the_memory_limit_is_a_json_413(client, settings, url):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    assert_error(client.post(url, {"field": "x" * 200}), "request_too_large")


def test_a_csrf_failure_has_one_code_and_detail_under_the_api(owner):
    """A plain Django view (CsrfViewMiddleware) answers as a DRF view (SessionAuthentication)."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    plain = assert_error(client.post("/api/test/form/", {"a": "1"}), "permission_denied")
    drf = assert_error(
        client.post("/api/test/session/", {}, content_type="application/json"),
        "permission_denied",
    )
    assert plain == drf
    assert plain["detail"] == f"CSRF Failed: {REASON_NO_CSRF_COOKIE}"
    assert "csrf_failed" not in ERROR_STATUS


def test_permission_denied_in_a_plain_api_view_is_json(client):
    assert_error(client.get("/api/test/forbidden/"), "permission_denied")


def test_outside_the_api_errors_are_html_pages(client):
    response = client.get("/no-such-page/")
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert response["Content-Type"].startswith("text/html")
    assert client.get("/test/form/", {}).status_code == HTTPStatus.OK
    csrf_client = Client(enforce_csrf_checks=True)
    response = csrf_client.post("/test/form/", {"a": "1"})
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert response["Content-Type"].startswith("text/html")


def test_every_error_code_is_snake_case_and_maps_to_an_error_status():
    for code, status in ERROR_STATUS.items():
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", code), code
        assert isinstance(status, HTTPStatus), code
        assert HTTPStatus.BAD_REQUEST <= status < 600, code
