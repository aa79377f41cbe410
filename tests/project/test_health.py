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
