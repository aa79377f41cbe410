"""Forms still post under the seeded Referrer-Policy (same-origin), with CSRF checks enforced.

With `no-referrer` a browser sends `Origin: null` and no Referer on a form post, and Django's CSRF
check refuses every login: the seeded rule must not do that, and the refusal below is what it
would look like.
"""

from __future__ import annotations

import re
from http import HTTPStatus

import pytest
from django.test import Client

from policies.headers import rule_sets
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.headers.urls")]

LOGIN = "/accounts/login/"
ORIGIN = "https://testserver"


@pytest.fixture(autouse=True)
def fresh_rules():
    rule_sets.clear()
    yield
    rule_sets.clear()


@pytest.fixture
def browser() -> Client:
    """A client that, like a browser, gets no CSRF exemption."""
    return Client(enforce_csrf_checks=True)


def login_page_token(browser: Client) -> str:
    page = browser.get(LOGIN, secure=True)
    assert page.status_code == HTTPStatus.OK
    # What the browser is told: send the Referer (and a real Origin) to this same origin.
    assert page["Referrer-Policy"] == "same-origin"
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)


def post_login(browser: Client, token: str, **headers: str):
    return browser.post(
        LOGIN,
        {"username": "owner", "password": PASSWORD, "csrfmiddlewaretoken": token},
        secure=True,
        **headers,
    )


def test_a_same_origin_login_post_signs_in(browser, owner):
    token = login_page_token(browser)

    response = post_login(browser, token, HTTP_ORIGIN=ORIGIN, HTTP_REFERER=f"{ORIGIN}{LOGIN}")

    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == "/"
    assert b"Signed in as owner" in browser.get("/t/whoami/", secure=True).content


def test_a_login_post_with_origin_null_is_refused(browser, owner):
    """What `Referrer-Policy: no-referrer` would make a browser send: Origin null, no Referer."""
    token = login_page_token(browser)

    response = post_login(browser, token, HTTP_ORIGIN="null")

    assert response.status_code == HTTPStatus.FORBIDDEN
    assert b"Signed in as anonymous" in browser.get("/t/whoami/", secure=True).content


def test_a_login_post_with_no_referer_at_all_is_refused_over_https(browser, owner):
    """Over HTTPS, Django also needs the Referer when no Origin is sent: same-origin keeps it."""
    token = login_page_token(browser)

    response = post_login(browser, token)

    assert response.status_code == HTTPStatus.FORBIDDEN
    assert b"Signed in as anonymous" in browser.get("/t/whoami/", secure=True).content
