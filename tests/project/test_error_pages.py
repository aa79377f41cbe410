"""Pages for errors outside the API look like the rest of the site (our stylesheet, no inline
style the CSP would block) and say what to do."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_a_missing_page_is_our_404(client):
    response = client.get("/no/such/page/")
    assert response.status_code == HTTPStatus.NOT_FOUND
    page = response.content.decode()
    assert "<h1>Not found</h1>" in page
    assert "portcullis.css" in page
    assert "<style" not in page


def test_a_failed_csrf_check_explains_itself_without_inline_style(owner):
    strict = Client(enforce_csrf_checks=True)
    response = strict.post("/accounts/login/", {"username": "owner", "password": "x"})
    assert response.status_code == HTTPStatus.FORBIDDEN
    page = response.content.decode()
    assert "This form could not be accepted" in page
    assert "allow cookies" in page  # no CSRF cookie was sent
    assert "<style" not in page


def test_the_favicon_is_ours(client):
    response = client.get("/favicon.ico")
    assert response.status_code == HTTPStatus.MOVED_PERMANENTLY
    assert response["Location"].endswith("favicon.svg")
