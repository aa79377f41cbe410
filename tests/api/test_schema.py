"""The API's OpenAPI description and its docs page: served, valid, complete for what exists."""

from __future__ import annotations

import json
from http import HTTPStatus

import pytest
import requests
import schemathesis
import yaml
from django.core.management import call_command
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(owner):
    client = APIClient()
    client.force_login(owner)
    return client


def test_the_schema_is_served_as_json_and_yaml(api):
    as_json = api.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert as_json.status_code == HTTPStatus.OK
    schema = json.loads(as_json.content)
    assert schema["openapi"].startswith("3.")
    as_yaml = api.get("/api/v1/schema/?format=yaml")
    assert as_yaml.status_code == HTTPStatus.OK
    assert yaml.safe_load(as_yaml.content)["paths"] == schema["paths"]


def test_the_upload_endpoint_is_described_with_its_errors_and_headers(api):
    schema = json.loads(api.get("/api/v1/schema/?format=json").content)
    post = schema["paths"]["/api/v1/uploads/"]["post"]
    assert {"201", "400", "401", "403", "404", "409", "413", "415", "422", "429", "503"} <= set(
        post["responses"]
    )
    assert "malware_detected" in post["responses"]["422"]["description"]
    parameters = {(p["in"], p["name"]) for p in post["parameters"]}
    assert {("query", "policy"), ("header", "Idempotency-Key")} <= parameters
    assert "multipart/form-data" in post["requestBody"]["content"]
    error = schema["components"]["schemas"]["Error"]
    assert {"code", "detail"} <= set(error["required"])
    assert {"tokenAuth", "cookieAuth"} <= set(schema["components"]["securitySchemes"])


def test_the_schema_validates_without_warnings(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "s.yaml"))
    assert "/api/v1/upload-policies/" in (tmp_path / "s.yaml").read_text()


def test_the_description_is_public_the_api_is_not(client):
    """Anyone may read how to call the API (to generate a client); calling it needs a login."""
    assert client.get("/api/v1/schema/?format=json").status_code == HTTPStatus.OK
    assert client.get("/api/v1/docs/").status_code == HTTPStatus.OK
    assert client.get("/api/v1/uploads/").status_code == HTTPStatus.UNAUTHORIZED


def test_the_docs_page_loads_everything_from_our_static_files(api):
    page = api.get("/api/v1/docs/")
    assert page.status_code == HTTPStatus.OK
    html = page.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert "cdn" not in html.lower()
    assert "<script>" not in html  # the split view: its set-up is a script file too
    assert "<style>" not in html
    assert "/static/api-docs.css" in html


@pytest.mark.parametrize(("reader", "keys"), [("owner", 12), ("editor", 30)])
def test_a_policy_read_matches_the_description(request, reader, keys):
    """A plain caller reads the limits, an editor the whole policy; each answer conforms to the
    described `oneOf` (exactly one of the two matches)."""
    client = APIClient()
    client.force_login(request.getfixturevalue(reader))
    description = schemathesis.openapi.from_dict(
        json.loads(client.get("/api/v1/schema/?format=json").content)
    )
    url = "http://testserver/api/v1/upload-policies/"
    answer = client.get(url)
    policies = answer.json()
    assert [policy["slug"] for policy in policies] == ["default"]
    assert len(policies[0]) >= keys
    checked = schemathesis.Response(
        status_code=answer.status_code,
        headers={name: [value] for name, value in answer.headers.items()},
        content=answer.content,
        request=requests.Request("GET", url).prepare(),
        elapsed=0.0,
        verify=False,
    )
    assert description["/api/v1/upload-policies/"]["GET"].validate_response(checked) is None
