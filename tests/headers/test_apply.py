"""The seeded rules reach real responses, over HTTPS as Django sees it."""

from __future__ import annotations

from http import HTTPStatus

import pytest

from policies.headers import preview, rule_sets

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_rules():
    rule_sets.clear()
    yield
    rule_sets.clear()


def test_an_html_page_gets_the_seeded_headers(client):
    response = client.get("/accounts/login/", secure=True)
    assert response.status_code == HTTPStatus.OK
    csp = response["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "object-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "'unsafe-inline'" not in csp
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert response["Cross-Origin-Resource-Policy"] == "same-origin"
    assert "camera=()" in response["Permissions-Policy"]
    assert response["X-Frame-Options"] == "DENY"


def test_the_preview_names_the_rule_behind_each_header():
    rows = {row.header: row for row in preview("/admin/")}
    assert rows["Content-Security-Policy"].source == "admin"
    assert rows["Strict-Transport-Security"].source == "site-wide"
