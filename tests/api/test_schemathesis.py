"""The API against its own OpenAPI description, by schemathesis.

Every operation of /api/v1/schema/ gets requests generated from the description (its examples,
coverage and fuzzing phases; well-formed and malformed), sent in-process with a staff token to the
test database. The checks: no server error, only documented statuses, the documented content
type, response bodies and headers as described, malformed input refused.

Generated ids rarely exist, so path parameters are drawn half the time from the real objects, and
each operation also gets one request built from seed data (a real id, the current version, a valid
body), which must succeed: a description that only ever answers 401 or 404 cannot pass.

Not checked: "schema-valid request rejected". The server refuses more than a JSON Schema can
express (a header value's syntax, a CSP directive's grammar, a file's sniffed type), with the
documented 4xx, so a well-formed request that it refuses is not a fault.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import positive_data_acceptance

from policies import services
from policies.models import AuditEntry, HeaderRule, UploadPolicy
from policies.services import Actor
from tests.uploads.http import file_part, multipart
from tests.uploads.ops import api_upload, make_policy, token_client_for
from uploads.models import Upload

pytestmark = pytest.mark.django_db

SCHEMA_URL = "/api/v1/schema/?format=json"
EXAMPLES_PER_OPERATION = 20
WHY = {"reason": "schemathesis run", "rollback_note": "roll back the entry"}
FILE = b"quarterly figures\n"


@pytest.fixture
def api_schema(django_user_model, settings, upload_dirs):
    """The live description, loaded through the app, with a staff token on every request."""
    settings.ALLOWED_HOSTS = ["localhost", "testserver"]
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        # Throttling has its own tests; here it would only stop the run early.
        "DEFAULT_THROTTLE_RATES": dict.fromkeys(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]),
    }
    staff = django_user_model.objects.create_superuser("fuzzer", "fuzzer@example.com", "x" * 24)
    seed = Seed(staff)
    keep_the_test_connection()
    try:
        schema = schemathesis.openapi.from_wsgi(SCHEMA_URL, get_wsgi_application())
        # Only the token signs the requests in; a generated session cookie would be noise.
        # Deterministic: the same requests on every run, so a red CI is a regression, not luck.
        schema.config.generation.update(
            max_examples=EXAMPLES_PER_OPERATION,
            with_security_parameters=False,
            deterministic=True,
        )

        @schema.auth()
        class StaffToken:
            def get(self, case, context):
                return seed.authorization

            def set(self, case, authorization, context):
                case.headers = {**(case.headers or {}), "Authorization": authorization}

        @schema.hook
        def flatmap_path_parameters(context, path_parameters):
            return seed.real_path_parameters(context, path_parameters)

        schema.seed = seed
        yield schema
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


lazy_schema = schemathesis.pytest.from_fixture("api_schema")


@lazy_schema.parametrize()
def test_the_api_answers_as_its_description_says(case, api_schema):
    seed: Seed = api_schema.seed
    if case.operation.label not in seed.seeded:
        seed.seeded.add(case.operation.label)
        seeded = seed.case_for(case.operation)
        response = seeded.call_and_validate(excluded_checks=[positive_data_acceptance])
        assert HTTPStatus.OK <= response.status_code < HTTPStatus.MULTIPLE_CHOICES, (
            case.operation.label,
            response.status_code,
            response.text[:500],
        )
    case.call_and_validate(excluded_checks=[positive_data_acceptance])


def keep_the_test_connection() -> None:
    """As Django's test client does around its requests: the app's requests must not close the
    test's database connection (and with it its transaction). The test client connects the
    signals again after each of its own requests, so this is called after those too."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)


class Seed:
    """The run's own data, and a valid request for each operation built from it."""

    def __init__(self, staff) -> None:
        self.staff = staff
        self.client = token_client_for(staff)
        self.authorization = self.client._credentials["HTTP_AUTHORIZATION"]
        self.actor = Actor.for_user(staff)
        self.seeded: set[str] = set()
        self.fresh_policy()
        self.fresh_rule()
        self.fresh_upload()

    # Objects made through the services (audited), each new so no earlier request took it.
    def fresh_policy(self) -> UploadPolicy:
        return make_policy(self.actor, f"fuzz-{uuid.uuid4().hex[:8]}")

    def fresh_rule(self) -> HeaderRule:
        return services.rule_create(
            data={"name": f"fuzz-{uuid.uuid4().hex[:8]}", "path": "/fuzz/"},
            actor=self.actor,
            **WHY,
        )

    def get(self, url: str) -> dict[str, Any]:
        response = self.client.get(url)
        keep_the_test_connection()
        assert response.status_code == HTTPStatus.OK, response.json()
        return response.json()

    def fresh_upload(self) -> Upload:
        response = api_upload(self.client, "figures.txt", FILE)
        keep_the_test_connection()
        assert response.status_code == HTTPStatus.CREATED, response.json()
        return Upload.objects.get(pk=response.json()["id"])

    def fresh_change(self) -> AuditEntry:
        """A policy change that can be rolled back (the newest entry of its object)."""
        policy = self.fresh_policy()
        services.policy_update(
            policy=policy,
            changes={"title": "Changed"},
            version=policy.version,
            actor=self.actor,
            **WHY,
        )
        return AuditEntry.objects.order_by("-seq").first()

    def real_path_parameters(self, context, path_parameters: dict[str, Any]):
        """Hook: half the time, the generated id is swapped for one that exists."""
        real = self._existing(context.operation.path)
        if real is None or not path_parameters:
            return st.just(path_parameters)
        name = next(iter(path_parameters))
        return st.sampled_from([path_parameters, {**path_parameters, name: real}])

    def _existing(self, path: str) -> Any:
        if "/upload-policies/" in path:
            policy = UploadPolicy.objects.order_by("-pk").first()
            return policy and policy.pk
        if "/header-rules/" in path:
            rule = HeaderRule.objects.order_by("-pk").first()
            return rule and rule.pk
        if "/uploads/" in path:
            upload = Upload.objects.order_by("-created_at").first()
            return upload and str(upload.pk)
        if "/audit/" in path:
            entry = AuditEntry.objects.order_by("-seq").first()
            return entry and entry.seq
        return None

    def case_for(self, operation):
        """A valid request for `operation`, built from the seed data."""
        label = operation.label
        request: dict[str, Any] = {"query": dict(REQUIRED_QUERY.get(label, {}))}
        if builder := BUILDERS.get(label):
            request.update(builder(self))
        headers = {"Authorization": self.authorization, **request.pop("headers", {})}
        return operation.Case(headers=headers, **request)


def _json(body: dict[str, Any]) -> dict[str, Any]:
    return {"body": body, "media_type": "application/json"}


def _fresh(seed: Seed, kind: str):
    return {"policy": seed.fresh_policy, "rule": seed.fresh_rule, "upload": seed.fresh_upload}[
        kind
    ]()


def _read(kind: str) -> Callable[[Seed], dict[str, Any]]:
    def build(seed: Seed) -> dict[str, Any]:
        obj = _fresh(seed, kind)
        return {"path_parameters": {"id": str(obj.pk) if kind == "upload" else obj.pk}}

    return build


def _create(kind: str) -> Callable[[Seed], dict[str, Any]]:
    def build(seed: Seed) -> dict[str, Any]:
        name = f"fuzz-{uuid.uuid4().hex[:8]}"
        if kind == "policy":
            fields = {"slug": name, "allowed_types": ["text/plain"], "allowed_extensions": ["txt"]}
        else:
            fields = {"name": name, "path": "/fuzz/"}
        return _json({**fields, **WHY})

    return build


def _put(kind: str) -> Callable[[Seed], dict[str, Any]]:
    """PUT sends back what GET answered, one field changed."""

    def build(seed: Seed) -> dict[str, Any]:
        obj = _fresh(seed, kind)
        url = f"/api/v1/{COLLECTION[kind]}/{obj.pk}/"
        current = seed.get(url)
        return {
            "path_parameters": {"id": obj.pk},
            **_json({**current, CHANGED_FIELD[kind]: "Put", **WHY}),
        }

    return build


def _patch(kind: str) -> Callable[[Seed], dict[str, Any]]:
    def build(seed: Seed) -> dict[str, Any]:
        obj = _fresh(seed, kind)
        body = {CHANGED_FIELD[kind]: "Patched", "version": obj.version, **WHY}
        return {"path_parameters": {"id": obj.pk}, **_json(body)}

    return build


def _delete(kind: str) -> Callable[[Seed], dict[str, Any]]:
    def build(seed: Seed) -> dict[str, Any]:
        obj = _fresh(seed, kind)
        return {
            "path_parameters": {"id": obj.pk},
            "headers": {"If-Match": f'"{obj.version}"'},
            "query": dict(WHY),
        }

    return build


def build_audit_detail(seed: Seed) -> dict[str, Any]:
    return {"path_parameters": {"seq": AuditEntry.objects.order_by("-seq").first().seq}}


def build_rollback(seed: Seed) -> dict[str, Any]:
    return {
        "path_parameters": {"seq": seed.fresh_change().seq},
        **_json({"reason": "schemathesis rollback"}),
    }


def build_import(seed: Seed) -> dict[str, Any]:
    document = seed.get("/api/v1/policies/export/")
    return _json({"document": document, **WHY})


def build_upload(seed: Seed) -> dict[str, Any]:
    body, content_type = multipart(file_part("figures.txt", FILE, "text/plain"))
    return {
        "query": {"policy": "default"},
        "headers": {"Content-Type": content_type},
        "body": body,
        "media_type": "multipart/form-data",
    }


COLLECTION = {"policy": "upload-policies", "rule": "header-rules"}
CHANGED_FIELD = {"policy": "title", "rule": "description"}
BUILDERS: dict[str, Callable[[Seed], dict[str, Any]]] = {
    "POST /api/v1/upload-policies/": _create("policy"),
    "GET /api/v1/upload-policies/{id}/": _read("policy"),
    "PUT /api/v1/upload-policies/{id}/": _put("policy"),
    "PATCH /api/v1/upload-policies/{id}/": _patch("policy"),
    "DELETE /api/v1/upload-policies/{id}/": _delete("policy"),
    "POST /api/v1/header-rules/": _create("rule"),
    "GET /api/v1/header-rules/{id}/": _read("rule"),
    "PUT /api/v1/header-rules/{id}/": _put("rule"),
    "PATCH /api/v1/header-rules/{id}/": _patch("rule"),
    "DELETE /api/v1/header-rules/{id}/": _delete("rule"),
    "GET /api/v1/audit/{seq}/": build_audit_detail,
    "POST /api/v1/audit/{seq}/rollback/": build_rollback,
    "POST /api/v1/policies/import/": build_import,
    "POST /api/v1/uploads/": build_upload,
    "GET /api/v1/uploads/{id}/": _read("upload"),
    "DELETE /api/v1/uploads/{id}/": _read("upload"),
    "GET /api/v1/uploads/{id}/download/": _read("upload"),
}
REQUIRED_QUERY = {
    "GET /api/v1/headers/preview/": {"path": "/"},
    "GET /api/v1/upload-events/summary/": {"since": "2026-01-01T00:00:00Z"},
}
