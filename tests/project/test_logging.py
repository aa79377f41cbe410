"""Logs never carry tokens, cookies or passwords: the redaction itself, and end to end."""

from __future__ import annotations

import logging
from http import HTTPStatus

import pytest

from project.logging import RedactSecretsFilter, redact
from tests.conftest import PASSWORD

TOKEN = "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"Authorization: Token {TOKEN}", TOKEN),
        (f"'HTTP_AUTHORIZATION': 'Token {TOKEN}'", TOKEN),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", "eyJhbGciOiJIUzI1NiJ9"),
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
        (f"retrying with Token {TOKEN} for bob", TOKEN),
        ("sent bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln upstream", "eyJhbGciOiJIUzI1NiJ9"),
        ("Cookie: sessionid=abc123def; theme=dark", "abc123def"),
        ("Cookie: csrftoken=Zq1wX9rT4bLmN0pQ; sessionid=abc123def", "Zq1wX9rT4bLmN0pQ"),
        ("POST username=bob&password=hunter2&next=/", "hunter2"),
        ("{'username': 'bob', 'password': 'hunter2'}", "hunter2"),
        ('{"password": "hunter2", "token": "s3cr3t-value"}', "hunter2"),
        ('{"password": "hunter2", "token": "s3cr3t-value"}', "s3cr3t-value"),
        ("csrfmiddlewaretoken=Zq1wX9rT4bLmN0pQ&password1=hunter2", "Zq1wX9rT4bLmN0pQ"),
        ("GET /download?access_token=abc.def.ghi HTTP/1.1", "abc.def.ghi"),
    ],
)
def test_redact_removes_secrets(text, secret):
    cleaned = redact(text)
    assert secret not in cleaned
    assert "[redacted]" in cleaned


def test_redact_keeps_the_names_so_the_line_still_makes_sense():
    assert redact("login failed: password=hunter2 user=bob") == (
        "login failed: password=[redacted] user=bob"
    )
    assert redact(f"Authorization: Token {TOKEN}") == "Authorization: Token [redacted]"


@pytest.mark.parametrize(
    "text",
    [
        "Upload 42 accepted for policy default (image/png, 1234 bytes)",
        "Token authentication failed for user bob",
        "Basic information about the request",
        "Password reset requested for bob@example.com",
        "GET /api/v1/uploads/?limit=50&offset=100 200",
        "The bearer of this message is trusted",
    ],
)
def test_redact_leaves_ordinary_text_alone(text):
    assert redact(text) == text


def test_the_filter_redacts_the_formatted_message_and_drops_the_request():
    record = logging.LogRecord(
        "tests", logging.WARNING, __file__, 1, "login for %s with password=%s", ("bob", "x1"), None
    )
    record.request = object()
    assert RedactSecretsFilter().filter(record) is True
    assert record.getMessage() == "login for bob with password=[redacted]"
    assert record.request is None


@pytest.mark.django_db
@pytest.mark.urls("tests.project.urls")
def test_the_configured_handler_redacts_what_a_view_logs(client, console_log):
    assert client.get("/test/log/").status_code == HTTPStatus.OK
    output = console_log.getvalue()
    assert "view says hello; Authorization: Token [redacted]" in output
    assert TOKEN not in output


@pytest.mark.django_db
@pytest.mark.urls("tests.project.urls")
def test_a_traceback_in_the_log_is_redacted_too(client, console_log):
    client.raise_request_exception = False
    response = client.get("/test/boom/", headers={"Cookie": "sessionid=abc123def"})
    assert response.status_code == HTTPStatus.INTERNAL_SERVER_ERROR
    output = console_log.getvalue()
    assert "Internal Server Error: /test/boom/" in output
    assert "RuntimeError: failed with password=[redacted]" in output
    assert "hunter2" not in output
    assert "abc123def" not in output


@pytest.mark.django_db
def test_a_login_that_fails_quoting_the_password_logs_it_redacted(
    client, settings, console_log, raw_log_lines
):
    """A backend error quoting the credentials reaches the log as a traceback, password redacted."""
    settings.AUTHENTICATION_BACKENDS = ["tests.project.backends.CredentialQuotingBackend"]
    client.raise_request_exception = False
    wrong = "Wr0ng-but-memorable-passphrase"
    response = client.post("/accounts/login/", {"username": "owner", "password": wrong})
    assert response.status_code == HTTPStatus.INTERNAL_SERVER_ERROR
    # The record itself carried the password, so only the redaction keeps it out of the output.
    assert any(wrong in line for line in raw_log_lines)
    output = console_log.getvalue()
    assert "Internal Server Error: /accounts/login/" in output
    assert (
        "RuntimeError: directory lookup failed for {'username': 'owner', 'password': '[redacted]'}"
        in output
    )
    assert wrong not in output


@pytest.mark.django_db
def test_a_login_csrf_failure_logs_nothing_with_the_password(owner, console_log, raw_log_lines):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    response = client.post("/accounts/login/", {"username": "owner", "password": PASSWORD})
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert any("Forbidden (CSRF" in line for line in raw_log_lines)
    for line in [*raw_log_lines, console_log.getvalue()]:
        assert PASSWORD not in line
