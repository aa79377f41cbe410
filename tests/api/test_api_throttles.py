"""Throttle scopes for policy writes and report reads, set from settings."""

from __future__ import annotations

from http import HTTPStatus

import pytest

from tests.uploads.ops import token_client_for

pytestmark = pytest.mark.django_db

WHY = {"reason": "r", "rollback_note": "n"}


@pytest.fixture(autouse=True)
def _mid_minute(monkeypatch):
    monkeypatch.setattr("uploads.throttles._now", lambda: 1_800_000_030.0)


def _rates(settings, **rates: str) -> None:
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], **rates},
    }


def test_policy_writes_are_throttled_per_user_and_reads_are_not(editor, settings, default_policy):
    _rates(settings, policy_writes="2/minute")
    api = token_client_for(editor)
    url = f"/api/v1/upload-policies/{default_policy.pk}/"
    statuses = []
    for version in (1, 2, 3):
        body = {"title": f"v{version}", "version": version, **WHY}
        statuses.append(api.patch(url, body, format="json").status_code)
    assert statuses == [200, 200, 429]
    refused = api.patch(url, {"title": "x", "version": 3, **WHY}, format="json")
    assert refused.json()["code"] == "throttled"
    assert refused["Retry-After"] == "30"
    assert api.get(url).status_code == HTTPStatus.OK


def test_report_reads_are_throttled_per_user(editor, settings):
    _rates(settings, reports="1/minute")
    api = token_client_for(editor)
    assert api.get("/api/v1/audit/").status_code == HTTPStatus.OK
    assert api.get("/api/v1/audit/verify/").status_code == HTTPStatus.TOO_MANY_REQUESTS
