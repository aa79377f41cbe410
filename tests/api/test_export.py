"""Exporting policies and rules for review in version control: stable, sorted, complete."""

from __future__ import annotations

import json
from http import HTTPStatus
from io import StringIO

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command

from policies.models import HeaderRule, UploadPolicy
from tests.uploads.ops import change_policy, token_client_for

pytestmark = pytest.mark.django_db


def exported() -> str:
    out = StringIO()
    call_command("policies_export", stdout=out)
    return out.getvalue()


def test_the_export_holds_every_policy_and_rule_by_natural_key(default_policy):
    document = json.loads(exported())
    assert document["format"] == 1
    assert sorted(document["upload_policies"]) == sorted(
        UploadPolicy.objects.values_list("slug", flat=True)
    )
    assert sorted(document["header_rules"]) == sorted(
        HeaderRule.objects.values_list("name", flat=True)
    )
    default = document["upload_policies"]["default"]
    assert default["max_file_size_bytes"] == default_policy.max_file_size_bytes
    assert not {"id", "version", "slug", "created_at", "updated_at"} & set(default)


def test_two_exports_of_the_same_state_are_identical_and_a_change_shows(actor, default_policy):
    first = exported()
    assert exported() == first
    assert first == json.dumps(json.loads(first), indent=2, sort_keys=True) + "\n"
    change_policy(actor, default_policy, title="Everything else")
    changed = [line for line in exported().splitlines() if line not in first.splitlines()]
    assert changed == ['      "title": "Everything else",']


def test_the_export_goes_to_a_file(tmp_path):
    target = tmp_path / "policies.json"
    call_command("policies_export", "--output", str(target), stderr=StringIO())
    assert target.read_text() == exported()


def test_the_api_export_is_the_same_document(owner):
    api = token_client_for(owner)
    assert api.get("/api/v1/policies/export/").status_code == HTTPStatus.FORBIDDEN
    owner.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_uploadpolicy", "view_headerrule"])
    )
    response = token_client_for(owner).get("/api/v1/policies/export/")
    assert response.status_code == HTTPStatus.OK
    assert response.json() == json.loads(exported())
