"""Logging in and out through our own pages."""

from __future__ import annotations

import re
from http import HTTPStatus

import pytest
from django.test import Client
from django.urls import NoReverseMatch, reverse

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def _label_for(html: str, field_id: str) -> bool:
    return re.search(rf'<label for="{field_id}">', html) is not None


def test_the_login_page_is_ours_with_labelled_fields_and_a_csrf_token(client):
    response = client.get("/accounts/login/")
    assert response.status_code == HTTPStatus.OK
    assert "registration/login.html" in [t.name for t in response.templates]
    html = response.content.decode()
    assert "<title>Log in · Portcullis</title>" in html
    assert _label_for(html, "id_username")
    assert 'id="id_username"' in html
    assert _label_for(html, "id_password")
    assert 'type="password"' in html
    assert 'name="csrfmiddlewaretoken"' in html


def test_a_valid_login_redirects_home_and_signs_in(owner):
    client = Client(enforce_csrf_checks=True)
    token = client.get("/accounts/login/").context["csrf_token"]
    response = client.post(
        "/accounts/login/",
        {"username": "owner", "password": PASSWORD, "csrfmiddlewaretoken": str(token)},
    )
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == "/"
    home = client.get("/")
    assert "Signed in as owner" in home.content.decode()


def test_a_wrong_password_shows_an_error_and_stays(client, owner):
    response = client.post("/accounts/login/", {"username": "owner", "password": "nope"})
    assert response.status_code == HTTPStatus.OK
    html = response.content.decode()
    assert 'role="alert"' in html
    assert "Please enter a correct username and password" in html
    assert "_auth_user_id" not in client.session


def test_the_page_header_logs_out_with_a_post_form(client, owner):
    client.force_login(owner)
    html = client.get("/").content.decode()
    logout_form = r'<form method="post" action="/accounts/logout/"[^>]*>(.*?)</form>'
    form = re.search(logout_form, html, re.S)
    assert form is not None
    assert 'name="csrfmiddlewaretoken"' in form.group(1)


def test_logout_by_post_signs_out_and_shows_the_logged_out_page(client, owner):
    client.force_login(owner)
    response = client.post("/accounts/logout/")
    assert response.status_code == HTTPStatus.OK
    assert "registration/logged_out.html" in [t.name for t in response.templates]
    assert "You are logged out" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_logout_by_get_is_refused_and_keeps_the_session(client, owner):
    client.force_login(owner)
    response = client.get("/accounts/logout/")
    assert response.status_code == HTTPStatus.METHOD_NOT_ALLOWED
    assert client.session["_auth_user_id"] == str(owner.pk)


@pytest.mark.parametrize(
    "url",
    [
        "/accounts/password_reset/",
        "/accounts/password_reset/done/",
        "/accounts/reset/MQ/set-password/",
        "/accounts/password_change/",
    ],
)
def test_only_login_and_logout_are_exposed(client, url):
    assert client.get(url).status_code == HTTPStatus.NOT_FOUND


def test_login_and_logout_keep_their_url_names():
    assert reverse("login") == "/accounts/login/"
    assert reverse("logout") == "/accounts/logout/"
    with pytest.raises(NoReverseMatch):
        reverse("password_reset")


def test_an_empty_login_form_says_what_is_missing_next_to_each_field(client):
    html = client.post("/accounts/login/", {"username": "", "password": ""}).content.decode()
    assert html.count("This field is required.") == 2
    assert 'aria-describedby="id_username_error"' in html
    assert 'id="id_username_error"' in html
    assert 'aria-invalid="true"' in html
