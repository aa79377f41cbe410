"""Who may upload (403 `permission_denied` saying why) and the request throttles (429
`throttled`), through the API and the form."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from tests.uploads.conftest import only_event
from tests.uploads.ops import api_upload, at_once, form_upload, make_policy, token_client_for
from uploads.models import Upload, UploadEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(owner, upload_dirs):
    return token_client_for(owner)


@pytest.fixture
def reviewers_only(actor):
    Group.objects.create(name="reviewers")
    return make_policy(actor, "reviewers", upload_access="groups", allowed_groups=["reviewers"])


def test_a_groups_policy_refuses_non_members_and_says_why(api, signed_in, reviewers_only):
    response = api_upload(api, "a.txt", b"hi\n", policy="reviewers")
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert response.json() == {
        "code": "permission_denied",
        "detail": "Only members of certain groups may upload here.",
    }
    page = form_upload(signed_in, "a.txt", b"hi\n", policy="reviewers")
    assert page.status_code == HTTPStatus.FORBIDDEN
    assert "Only members of certain groups may upload here." in page.content.decode()
    assert list(UploadEvent.objects.values_list("code", flat=True)) == ["permission_denied"] * 2
    assert not Upload.objects.exists()


def test_members_of_a_listed_group_may_upload(api, owner, reviewers_only, upload_dirs):
    owner.groups.add(Group.objects.get(name="reviewers"))
    assert api_upload(api, "a.txt", b"hi\n", policy="reviewers").status_code == 201
    assert only_event().code == "accepted"


def test_staff_policies_take_staff(editor, actor, upload_dirs):
    make_policy(actor, "staff-drop", upload_access="staff")
    staff = token_client_for(editor)
    assert api_upload(staff, "a.txt", b"hi\n", policy="staff-drop").status_code == 201


@pytest.fixture(autouse=True)
def _mid_minute(monkeypatch):
    """Counters live in fixed one-minute windows: keep every request of a test in one."""
    monkeypatch.setattr("uploads.throttles._now", lambda: 1_800_000_030.0)


def _rates(settings, user: str, address: str) -> None:
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"uploads": user, "uploads_address": address},
    }


def test_the_api_throttles_a_users_uploads_at_the_limit(api, other_user, settings, upload_dirs):
    _rates(settings, user="3/minute", address="1000/minute")
    statuses = [api_upload(api, f"{i}.txt", b"hi\n").status_code for i in range(4)]
    assert statuses == [201, 201, 201, 429]
    refused = api_upload(api, "5.txt", b"hi\n")
    assert refused.json()["code"] == "throttled"
    assert refused["Retry-After"] == "30"  # the frozen clock is half-way through its minute
    assert Upload.objects.count() == 3
    assert api_upload(token_client_for(other_user), "x.txt", b"hi\n").status_code == 201
    assert api.get("/api/v1/uploads/").status_code == HTTPStatus.OK  # reads are not uploads


def test_the_api_throttles_per_client_address(api, other_user, settings, upload_dirs):
    _rates(settings, user="1000/minute", address="2/minute")
    other = token_client_for(other_user)
    assert api_upload(api, "a.txt", b"hi\n").status_code == 201
    assert api_upload(other, "b.txt", b"hi\n").status_code == 201
    response = api_upload(other, "c.txt", b"hi\n")  # same address (the test client's)
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    elsewhere = api_upload(other, "d.txt", b"hi\n", REMOTE_ADDR="203.0.113.9")
    assert elsewhere.status_code == HTTPStatus.CREATED


def test_a_spoofed_forwarded_for_does_not_escape_the_address_throttle(api, settings, upload_dirs):
    _rates(settings, user="1000/minute", address="2/minute")
    codes = [
        api_upload(api, f"{i}.txt", b"hi\n", HTTP_X_FORWARDED_FOR=f"198.51.100.{i}").status_code
        for i in range(3)
    ]
    assert codes == [201, 201, 429]  # not behind a proxy: the header means nothing


def test_the_form_is_throttled_too(signed_in, settings, upload_dirs):
    _rates(settings, user="1/minute", address="1000/minute")
    assert form_upload(signed_in, "a.txt", b"hi\n").status_code == HTTPStatus.FOUND
    page = form_upload(signed_in, "b.txt", b"hi\n")
    assert page.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert page["Retry-After"] == "30"
    assert "Too many uploads" in page.content.decode()
    assert Upload.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_parallel_api_uploads_are_throttled_exactly_at_the_limit(owner, settings, upload_dirs):
    _rates(settings, user="3/minute", address="1000/minute")
    token_client_for(owner)  # the token exists before the threads start

    def send(index: int) -> int:
        return api_upload(token_client_for(owner), f"{index}.txt", b"hi\n").status_code

    assert sorted(at_once(8, send)) == [201] * 3 + [429] * 5
    assert Upload.objects.count() == 3
    assert len(upload_dirs.stored_files()) == 3


@pytest.mark.django_db(transaction=True)
def test_parallel_form_uploads_are_throttled_exactly_at_the_limit(owner, settings, upload_dirs):
    _rates(settings, user="1000/minute", address="2/minute")

    def send(index: int) -> int:
        client = Client()
        client.force_login(owner)
        return form_upload(client, f"{index}.txt", b"hi\n").status_code

    assert sorted(at_once(6, send)) == [302] * 2 + [429] * 4
    assert Upload.objects.count() == 2


def test_ipv6_addresses_are_throttled_per_64_network(api, settings, upload_dirs):
    _rates(settings, user="1000/minute", address="2/minute")
    same_network = ["2001:db8:1:2::1", "2001:db8:1:2:ffff::9", "2001:db8:1:2::abcd"]
    codes = [
        api_upload(api, f"{i}.txt", b"hi\n", REMOTE_ADDR=address).status_code
        for i, address in enumerate(same_network)
    ]
    assert codes == [201, 201, 429]
    other = api_upload(api, "x.txt", b"hi\n", REMOTE_ADDR="2001:db8:1:3::1")
    assert other.status_code == HTTPStatus.CREATED


def test_an_ipv4_mapped_address_counts_as_its_ipv4_address(api, settings, upload_dirs):
    _rates(settings, user="1000/minute", address="1/minute")
    assert api_upload(api, "a.txt", b"hi\n", REMOTE_ADDR="192.0.2.7").status_code == 201
    again = api_upload(api, "b.txt", b"hi\n", REMOTE_ADDR="::ffff:192.0.2.7")
    assert again.status_code == HTTPStatus.TOO_MANY_REQUESTS
