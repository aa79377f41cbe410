"""HTTPS redirect (with /health exempt) and trusting a proxy's X-Forwarded-Proto only when told."""

from __future__ import annotations

from http import HTTPStatus

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def https_only(settings):
    settings.SECURE_SSL_REDIRECT = True
    return settings


def test_plain_http_is_redirected_to_https(client, https_only):
    response = client.get("/?q=1")
    assert response.status_code == HTTPStatus.MOVED_PERMANENTLY
    assert response["Location"] == "https://testserver/?q=1"


def test_https_is_served_with_hsts(client, https_only):
    response = client.get("/", secure=True)
    assert response.status_code == HTTPStatus.OK
    assert "max-age=31536000" in response["Strict-Transport-Security"]


def test_health_answers_over_plain_http(client, https_only):
    response = client.get("/health")
    assert response.status_code == HTTPStatus.OK
    assert response.json() == {"ok": True}


def test_behind_a_proxy_its_forwarded_proto_counts(client, https_only):
    https_only.BEHIND_PROXY = True
    https_only.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    response = client.get("/", headers={"X-Forwarded-Proto": "https"})
    assert response.status_code == HTTPStatus.OK
    assert "Strict-Transport-Security" in response


def test_not_behind_a_proxy_a_forwarded_proto_is_ignored(client, https_only):
    assert not https_only.BEHIND_PROXY
    response = client.get("/", headers={"X-Forwarded-Proto": "https"})
    assert response.status_code == HTTPStatus.MOVED_PERMANENTLY
    assert response["Location"].startswith("https://")
