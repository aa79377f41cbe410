"""GET /health: what a load balancer sees when the app and its database answer, and when not."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from django.db import OperationalError

from project import views

pytestmark = pytest.mark.django_db


def test_health_is_ok_when_the_database_answers(client):
    response = client.get("/health")
    assert response.status_code == HTTPStatus.OK
    assert response.json() == {"ok": True}
    assert "no-cache" in response["Cache-Control"]


def test_health_is_503_when_the_database_does_not_answer(client, monkeypatch):
    def unreachable(*args, **kwargs):
        raise OperationalError("connection refused")

    with monkeypatch.context() as patch:
        patch.setattr(views.connection, "cursor", unreachable)
        response = client.get("/health")
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response.json()["ok"] is False
    assert client.get("/health").status_code == HTTPStatus.OK


def test_health_answers_head(client):
    assert client.head("/health").status_code == HTTPStatus.OK


def test_health_refuses_post(client):
    assert client.post("/health").status_code == HTTPStatus.METHOD_NOT_ALLOWED


@pytest.fixture
def strict_hosts(settings):
    """Production-like: one allowed host and the HTTPS redirect on."""
    settings.ALLOWED_HOSTS = ["example.com"]
    settings.SECURE_SSL_REDIRECT = True
    return settings


def test_health_answers_a_load_balancer_probing_by_ip_over_http(client, strict_hosts, console_log):
    response = client.get("/health", HTTP_HOST="10.0.0.5")
    assert response.status_code == HTTPStatus.OK
    assert response.json() == {"ok": True}
    assert response["X-Request-ID"]
    assert client.head("/health", HTTP_HOST="10.0.0.5").status_code == HTTPStatus.OK
    assert "ERROR" not in console_log.getvalue()
    assert "DisallowedHost" not in console_log.getvalue()


def test_health_by_ip_is_503_when_the_database_does_not_answer(client, strict_hosts, monkeypatch):
    def unreachable(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(views.connection, "cursor", unreachable)
    response = client.get("/health", HTTP_HOST="10.0.0.5")
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response.json()["ok"] is False


@pytest.mark.parametrize("path", ["/", "/health/", "/accounts/login/", "/api/v1/"])
def test_other_paths_still_refuse_a_host_not_allowed(client, strict_hosts, path):
    assert client.get(path, HTTP_HOST="10.0.0.5").status_code == HTTPStatus.BAD_REQUEST


def test_an_allowed_host_is_still_redirected_to_https_off_the_health_path(client, strict_hosts):
    response = client.get("/", HTTP_HOST="example.com")
    assert response.status_code == HTTPStatus.MOVED_PERMANENTLY
    assert response["Location"] == "https://example.com/"
