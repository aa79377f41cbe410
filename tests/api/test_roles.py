"""Who gets what from every operation of /api/v1/: one table, operation x caller -> status.

STATUSES is the table: for each operation of the API description, the status each caller gets,
in this column order:

    owner      a plain user; owns the seeded upload
    other      another plain user
    editor     staff in "policy editors": every `policies` permission, no `uploads` one
    staff      is_staff, but no permission and no group
    anon       no credentials at all

REQUESTS says how each operation is sent (built from the seeded objects) and what its success
must show. Every cell is its own test on objects seeded for it alone, and asserts: the status,
never a 500; a JSON body (a successful download is the file, a 204 has no body); an error's
`code` (401 `not_authenticated`, 403 `permission_denied`, 404 `not_found`); that a refusal, and
any read, left the database and the stored files as they were; on success, the row's check of
the body and of what changed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import pytest
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from policies.exchange import export_document
from policies.models import AuditEntry, CspReport, HeaderRule, UploadPolicy
from policies.services import Actor, rule_create
from tests.conftest import PASSWORD, UploadDirs
from tests.uploads.ops import api_upload, change_policy, make_policy, token_client_for
from uploads.models import Upload, UploadEvent, UploadStatus

pytestmark = pytest.mark.django_db

# fmt: off
STATUSES = {
    #                                               owner other editor staff anon
    "GET /":                                        (200, 200, 200, 200, 401),
    "GET audit/":                                   (403, 403, 200, 403, 401),
    "GET audit/{seq}/":                             (403, 403, 200, 403, 401),
    "POST audit/{seq}/rollback/":                   (403, 403, 201, 403, 401),
    "GET audit/verify/":                            (403, 403, 200, 403, 401),
    "GET csp-reports/":                             (403, 403, 200, 403, 401),
    "GET header-rules/":                            (403, 403, 200, 403, 401),
    "POST header-rules/":                           (403, 403, 201, 403, 401),
    "GET header-rules/{id}/":                       (403, 403, 200, 403, 401),
    "PUT header-rules/{id}/":                       (403, 403, 200, 403, 401),
    "PATCH header-rules/{id}/":                     (403, 403, 200, 403, 401),
    "DELETE header-rules/{id}/":                    (403, 403, 204, 403, 401),
    "GET headers/preview/":                         (403, 403, 200, 403, 401),
    "GET policies/export/":                         (403, 403, 200, 403, 401),
    "POST policies/import/":                        (403, 403, 200, 403, 401),
    # Upload events need uploads.view_uploadevent, which none of these callers holds.
    "GET upload-events/":                           (403, 403, 403, 403, 401),
    "GET upload-events/summary/":                   (403, 403, 403, 403, 401),
    # Any signed-in caller reads policies; without view_uploadpolicy, only usable ones' limits.
    "GET upload-policies/":                         (200, 200, 200, 200, 401),
    "POST upload-policies/":                        (403, 403, 201, 403, 401),
    "GET upload-policies/{id}/":                    (200, 200, 200, 200, 401),
    "GET upload-policies/{id}/ (staff-only)":       (404, 404, 200, 200, 401),
    "PUT upload-policies/{id}/":                    (403, 403, 200, 403, 401),
    "PATCH upload-policies/{id}/":                  (403, 403, 200, 403, 401),
    "DELETE upload-policies/{id}/":                 (403, 403, 204, 403, 401),
    # Uploads are their owner's: to anyone else (no uploads permission) they do not exist.
    "GET uploads/":                                 (200, 200, 200, 200, 401),
    "POST uploads/":                                (201, 201, 201, 201, 401),
    "GET uploads/{id}/":                            (200, 404, 404, 404, 401),
    "DELETE uploads/{id}/":                         (204, 404, 404, 404, 401),
    "GET uploads/{id}/download/":                   (200, 404, 404, 404, 401),
}
# fmt: on
CALLERS = ("owner", "other", "editor", "staff", "anon")

API = "/api/v1/"
WHY = {"reason": "role table", "rollback_note": "undo it"}
FILE = b"quarterly figures\n"
RULE = {"path": "/reports/", "match_type": "prefix"}
ERROR_CODES = {401: "not_authenticated", 403: "permission_denied", 404: "not_found"}


@dataclass
class Seed:
    """What every cell starts from; the policies and the rule made by the editor."""

    users: dict[str, Any]  # caller -> user (None for anon)
    policy: UploadPolicy  # "target": created, then retitled (audit entries create, update)
    staff_policy: UploadPolicy  # only staff may upload under it
    rule: HeaderRule
    entry: AuditEntry  # the target's retitling: its latest change, so it may be rolled back
    upload: Upload  # the owner's figures.txt, under "default"


@dataclass
class Cell:
    """One answered request, for a success's check."""

    response: Any
    seed: Seed
    me: Any  # the caller's user
    before: dict[str, Any]  # state() before the request
    dirs: UploadDirs

    @property
    def body(self) -> Any:
        return self.response.json()

    def new_entries(self) -> list[AuditEntry]:
        return list(AuditEntry.objects.filter(seq__gt=self.before["audit"][-1]).order_by("seq"))

    def rows(self) -> list[dict[str, Any]]:
        """A paged list's rows (all on one page here)."""
        assert self.body["count"] == len(self.body["results"])
        return self.body["results"]


@dataclass(frozen=True)
class Op:
    send: Callable[[APIClient, Seed], Any]
    check: Callable[[Cell], None]


def state(dirs: UploadDirs) -> dict[str, Any]:
    """Everything a request could change: audited objects, uploads, their events and files."""
    return {
        "audit": list(AuditEntry.objects.order_by("seq").values_list("seq", flat=True)),
        "policies": list(UploadPolicy.objects.order_by("pk").values()),
        "rules": list(HeaderRule.objects.order_by("pk").values()),
        "uploads": list(Upload.objects.order_by("pk").values()),
        "events": list(UploadEvent.objects.order_by("pk").values_list("pk", flat=True)),
        "files": sorted(path.read_bytes() for path in dirs.stored_files()),
        "temporary files": dirs.temp_files(),
    }


# Requests, and the checks of their success.


def get(path: str, check: Callable[[Cell], None]) -> Op:
    """GET API + path, where path may name seeded objects: "audit/{s.entry.seq}/"."""
    return Op(lambda api, s: api.get(API + path.format(s=s)), check)


COLLECTION = {"policy": "upload-policies", "rule": "header-rules"}
MODEL = {"policy": UploadPolicy, "rule": HeaderRule}


def detail_url(s: Seed, kind: str) -> str:
    return f"{API}{COLLECTION[kind]}/{getattr(s, kind).pk}/"


def create(kind: str, **fields: Any) -> Op:
    """POST a new policy or rule; one `create` entry."""

    def send(api: APIClient, s: Seed):
        return api.post(f"{API}{COLLECTION[kind]}/", {**fields, **WHY}, format="json")

    def check(c: Cell) -> None:
        made = MODEL[kind].objects.get(**fields)
        assert (c.body["id"], c.body["version"]) == (made.pk, 1)
        assert [(e.action, e.object_id) for e in c.new_entries()] == [("create", str(made.pk))]

    return Op(send, check)


def edit(method: str, kind: str, **changes: Any) -> Op:
    """PATCH the changes, or PUT the whole object as read with them; version up, one entry."""

    def send(api: APIClient, s: Seed):
        url, target = detail_url(s, kind), getattr(s, kind)
        body = {**changes, "version": target.version, **WHY}
        if method == "put":
            body = {**token_client_for(s.users["editor"]).get(url).json(), **body}
        return getattr(api, method)(url, body, format="json")

    def check(c: Cell) -> None:
        target = getattr(c.seed, kind)
        assert c.body["version"] == target.version + 1
        assert {name: c.body[name] for name in changes} == changes
        now = MODEL[kind].objects.get(pk=target.pk)
        assert {name: getattr(now, name) for name in changes} == changes
        assert [(e.action, e.object_id) for e in c.new_entries()] == [("update", str(target.pk))]

    return Op(send, check)


def delete(kind: str) -> Op:
    """DELETE with the why as query parameters and the version as If-Match; one entry."""

    def send(api: APIClient, s: Seed):
        why = "?reason=role+table&rollback_note=undo+it"
        return api.delete(detail_url(s, kind) + why, HTTP_IF_MATCH=f'"{getattr(s, kind).version}"')

    def check(c: Cell) -> None:
        target = getattr(c.seed, kind)
        assert not MODEL[kind].objects.filter(pk=target.pk).exists()
        assert [(e.action, e.object_id) for e in c.new_entries()] == [("delete", str(target.pk))]

    return Op(send, check)


def you_are(c: Cell) -> None:
    assert c.body == {"user": c.me.username, "version": "v1"}


def lists_the_audit_log(c: Cell) -> None:
    assert [entry["seq"] for entry in c.rows()] == c.before["audit"][::-1]


def shows_the_entry(c: Cell) -> None:
    assert (c.body["seq"], c.body["action"]) == (c.seed.entry.seq, "update")
    assert (c.body["before"]["title"], c.body["after"]["title"]) == ("", "Target")


def rolls_back(api: APIClient, s: Seed):
    return api.post(f"{API}audit/{s.entry.seq}/rollback/", WHY, format="json")


def rolled_back(c: Cell) -> None:
    [entry] = c.new_entries()
    assert (c.body["seq"], c.body["action"]) == (entry.seq, "rollback")
    assert (c.body["rolls_back_seq"], c.body["actor"]) == (c.seed.entry.seq, "user:editor")
    assert UploadPolicy.objects.get(pk=c.seed.policy.pk).title == ""


def chain_is_whole(c: Cell) -> None:
    assert (c.body["ok"], c.body["count"]) == (True, len(c.before["audit"]))


def lists_csp_reports(c: Cell) -> None:
    assert [(r["document_path"], r["count"]) for r in c.rows()] == [("/reports/", 2)]


def lists_the_rules(c: Cell) -> None:
    assert {rule["name"] for rule in c.body} == {rule["name"] for rule in c.before["rules"]}


def shows_the_rule(c: Cell) -> None:
    assert (c.body["id"], c.body["name"]) == (c.seed.rule.pk, "role-table")
    assert c.body["path"] == "/reports/"


def previews_headers(c: Cell) -> None:
    assert {"Content-Security-Policy", "X-Content-Type-Options"} <= {r["header"] for r in c.body}


def exports_everything(c: Cell) -> None:
    assert c.body == export_document()
    assert {"default", "target", "staff-only"} <= set(c.body["upload_policies"])


def imports(api: APIClient, s: Seed):
    document = export_document()
    document["upload_policies"]["default"]["title"] = "Imported"
    return api.post(f"{API}policies/import/", {"document": document, **WHY}, format="json")


def imported(c: Cell) -> None:
    assert c.body["applied"] is True
    [change] = c.body["changes"]
    assert change.startswith("~ upload_policies.default"), change
    assert UploadPolicy.objects.get(slug="default").title == "Imported"
    assert [entry.action for entry in c.new_entries()] == ["import"]


def never(c: Cell) -> None:
    raise AssertionError("no caller of the table may succeed here")


def lists_usable_policies(c: Cell) -> None:
    slugs = [policy["slug"] for policy in c.body]
    if c.me.has_perm("policies.view_uploadpolicy"):  # whole policies, every one
        assert slugs == sorted(policy["slug"] for policy in c.before["policies"])
        assert all("upload_access" in policy for policy in c.body)
    else:  # the limits of the policies the caller may upload under, nothing more
        usable = ["default", "staff-only", "target"] if c.me.is_staff else ["default", "target"]
        assert slugs == usable
        assert not any("id" in policy or "upload_access" in policy for policy in c.body)


def shows_the_policy(slug: str) -> Callable[[Cell], None]:
    def check(c: Cell) -> None:
        assert c.body["slug"] == slug
        # Whole to holders of view_uploadpolicy; the limits only to the others.
        assert ("upload_access" in c.body) is c.me.has_perm("policies.view_uploadpolicy")

    return check


def lists_own_uploads(c: Cell) -> None:
    mine = [str(c.seed.upload.pk)] if c.me == c.seed.upload.owner else []
    assert [upload["id"] for upload in c.rows()] == mine


def uploaded(c: Cell) -> None:
    made = Upload.objects.get(pk=c.body["id"])
    assert (made.owner, made.original_name, c.body["size"]) == (c.me, "new.txt", 4)
    assert Upload.objects.count() == len(c.before["uploads"]) + 1
    assert sorted(path.read_bytes() for path in c.dirs.stored_files()) == [b"new\n", FILE]


def shows_the_upload(c: Cell) -> None:
    assert (c.body["id"], c.body["filename"]) == (str(c.seed.upload.pk), "figures.txt")


def upload_deleted(c: Cell) -> None:
    assert Upload.objects.get(pk=c.seed.upload.pk).status == UploadStatus.DELETED
    assert c.dirs.stored_files() == []


def is_the_file(c: Cell) -> None:
    assert b"".join(c.response.streaming_content) == FILE
    assert c.response["Content-Disposition"] == 'attachment; filename="figures.txt"'


REQUESTS = {
    "GET /": get("", you_are),
    "GET audit/": get("audit/", lists_the_audit_log),
    "GET audit/{seq}/": get("audit/{s.entry.seq}/", shows_the_entry),
    "POST audit/{seq}/rollback/": Op(rolls_back, rolled_back),
    "GET audit/verify/": get("audit/verify/", chain_is_whole),
    "GET csp-reports/": get("csp-reports/", lists_csp_reports),
    "GET header-rules/": get("header-rules/", lists_the_rules),
    "POST header-rules/": create("rule", name="new-rule", **RULE),
    "GET header-rules/{id}/": get("header-rules/{s.rule.pk}/", shows_the_rule),
    "PUT header-rules/{id}/": edit("put", "rule", description="Put back whole"),
    "PATCH header-rules/{id}/": edit("patch", "rule", priority=7),
    "DELETE header-rules/{id}/": delete("rule"),
    "GET headers/preview/": get("headers/preview/?path=/", previews_headers),
    "GET policies/export/": get("policies/export/", exports_everything),
    "POST policies/import/": Op(imports, imported),
    "GET upload-events/": get("upload-events/", never),
    "GET upload-events/summary/": get("upload-events/summary/?since=2000-01-01T00:00:00Z", never),
    "GET upload-policies/": get("upload-policies/", lists_usable_policies),
    "POST upload-policies/": create("policy", slug="new-policy"),
    "GET upload-policies/{id}/": get("upload-policies/{s.policy.pk}/", shows_the_policy("target")),
    "GET upload-policies/{id}/ (staff-only)": get(
        "upload-policies/{s.staff_policy.pk}/", shows_the_policy("staff-only")
    ),
    "PUT upload-policies/{id}/": edit("put", "policy", title="Put back whole"),
    "PATCH upload-policies/{id}/": edit("patch", "policy", max_file_size_bytes=2048),
    "DELETE upload-policies/{id}/": delete("policy"),
    "GET uploads/": get("uploads/", lists_own_uploads),
    "POST uploads/": Op(lambda api, s: api_upload(api, "new.txt", b"new\n"), uploaded),
    "GET uploads/{id}/": get("uploads/{s.upload.pk}/", shows_the_upload),
    "DELETE uploads/{id}/": Op(
        lambda api, s: api.delete(f"{API}uploads/{s.upload.pk}/"), upload_deleted
    ),
    "GET uploads/{id}/download/": get("uploads/{s.upload.pk}/download/", is_the_file),
}


@pytest.fixture
def seed(owner, other_user, editor, django_user_model, upload_dirs, settings) -> Seed:
    settings.REST_FRAMEWORK = {  # throttles have their own tests; here they would interfere
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": dict.fromkeys(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]),
    }
    staff = django_user_model.objects.create_user(
        "staffer", "staff@example.com", PASSWORD, is_staff=True
    )
    actor = Actor.for_user(editor)
    policy = change_policy(actor, make_policy(actor, "target"), title="Target")
    now = timezone.now()
    CspReport.objects.create(
        document_path="/reports/",
        directive="script-src-elem",
        blocked_uri="inline",
        count=2,
        first_seen=now,
        last_seen=now,
    )
    uploaded = api_upload(token_client_for(owner), "figures.txt", FILE)
    assert uploaded.status_code == HTTPStatus.CREATED, uploaded.json()
    return Seed(
        users={"owner": owner, "other": other_user, "editor": editor, "staff": staff, "anon": None},
        policy=policy,
        staff_policy=make_policy(actor, "staff-only", upload_access="staff"),
        rule=rule_create(data={"name": "role-table", **RULE}, actor=actor, **WHY),
        entry=AuditEntry.objects.get(object_id=str(policy.pk), action="update"),
        upload=Upload.objects.get(pk=uploaded.json()["id"]),
    )


def test_the_table_covers_every_operation_of_the_schema():
    """No operation left out, none made up (one is there twice: a policy only staff may use)."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    described = {
        f"{method.upper()} {path.removeprefix(API) or '/'}"
        for path, operations in schema["paths"].items()
        for method in operations
    }
    assert {name.removesuffix(" (staff-only)") for name in STATUSES} == described
    assert STATUSES.keys() == REQUESTS.keys()


@pytest.mark.parametrize(
    ("operation", "caller", "status"),
    [
        pytest.param(operation, caller, status, id=f"{operation} as {caller}")
        for operation, statuses in STATUSES.items()
        for caller, status in zip(CALLERS, statuses, strict=True)
    ],
)
def test_each_caller_gets_what_the_table_says(
    operation, caller, status, seed, upload_dirs, django_capture_on_commit_callbacks
):
    me = seed.users[caller]
    api = APIClient() if me is None else token_client_for(me)
    before = state(upload_dirs)
    with django_capture_on_commit_callbacks(execute=True):  # e.g. a deleted upload's file
        response = REQUESTS[operation].send(api, seed)

    assert response.status_code == status, getattr(response, "data", response)  # never a 500
    if response.streaming:  # the download: the file itself, not an error page
        assert not response["Content-Type"].startswith(("application/json", "text/html"))
    elif status == HTTPStatus.NO_CONTENT:
        assert response.content == b""
    else:
        assert response["Content-Type"] == "application/json"
    cell = Cell(response, seed, me, before, upload_dirs)
    if status >= HTTPStatus.BAD_REQUEST:
        assert cell.body["code"] == ERROR_CODES[status], cell.body
        if status == HTTPStatus.UNAUTHORIZED:
            assert response["WWW-Authenticate"] == "Token"
        assert state(upload_dirs) == before, "a refused request changed something"
        return
    if response.request["REQUEST_METHOD"] == "GET":
        assert state(upload_dirs) == before, "a read changed something"
    REQUESTS[operation].check(cell)


@pytest.mark.parametrize("path", ["header-rules/", "audit/"])
def test_options_needs_the_view_permission_like_get(other_user, editor, path):
    assert token_client_for(other_user).options(f"{API}{path}").status_code == 403
    assert token_client_for(editor).options(f"{API}{path}").status_code == 200
