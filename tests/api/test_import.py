"""Importing an export: the database becomes the document, each change one `import` audit entry,
all or nothing; a second import changes nothing; a dry run changes nothing; bad files say where."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from policies import presets
from policies.models import AuditEntry, HeaderRule, UploadPolicy
from policies.services import policy_delete, rule_create, rule_delete, snapshot
from tests.uploads.ops import change_policy, make_policy

pytestmark = pytest.mark.django_db

WHY = {"reason": "empty the database", "rollback_note": "import the export"}


def exported() -> str:
    out = StringIO()
    call_command("policies_export", stdout=out)
    return out.getvalue()


def import_file(tmp_path, text: str, *args: str) -> str:
    path = tmp_path / "policies.json"
    path.write_text(text)
    out = StringIO()
    call_command(
        "policies_import",
        str(path),
        "--reason",
        "review #12",
        "--rollback-note",
        "re-import",
        *args,
        stdout=out,
    )
    return out.getvalue()


def test_an_import_makes_the_database_what_the_export_said(tmp_path, actor, default_policy):
    make_policy(actor, "avatars", max_file_size_bytes=1024 * 1024)
    reviewed = exported()
    seq_before = AuditEntry.objects.order_by("-seq").first().seq
    # Drift after the review: a change, a deletion, an addition.
    change_policy(actor, default_policy, title="drifted")
    avatars = UploadPolicy.objects.get(slug="avatars")
    policy_delete(
        policy=avatars, version=avatars.version, actor=actor, reason="x", rollback_note="y"
    )
    rule_create(
        data={"name": "extra", "path": "/extra/", "match_type": "prefix"},
        actor=actor,
        reason="x",
        rollback_note="y",
    )
    printed = import_file(tmp_path, reviewed)
    assert "~ upload_policies.default" in printed
    assert "+ upload_policies.avatars (new)" in printed
    assert "- header_rules.extra (removed)" in printed
    assert exported() == reviewed
    imports = AuditEntry.objects.filter(seq__gt=seq_before, action="import")
    assert imports.count() == 3
    assert set(imports.values_list("reason", flat=True)) == {"review #12"}


def test_a_second_import_changes_nothing_and_writes_no_entry(tmp_path):
    reviewed = exported()
    entries = AuditEntry.objects.count()
    assert "Nothing to change." in import_file(tmp_path, reviewed)
    assert AuditEntry.objects.count() == entries


def test_a_dry_run_prints_the_diff_and_changes_nothing(tmp_path, actor, default_policy):
    document = json.loads(exported())
    document["upload_policies"]["default"]["max_file_size_bytes"] = 2048
    entries = AuditEntry.objects.count()
    printed = import_file(tmp_path, json.dumps(document), "--dry-run")
    assert "max_file_size_bytes: 10485760 -> 2048" in printed
    assert "Dry run" in printed
    assert UploadPolicy.objects.get(slug="default").max_file_size_bytes == 10 * 1024 * 1024
    assert AuditEntry.objects.count() == entries


@pytest.mark.parametrize(
    ("mangle", "says"),
    [
        (lambda text: text[:-20], "not JSON"),
        (lambda text: text.replace('"format": 1', '"format": 7'), "not a policies export"),
        (
            lambda text: text.replace('"max_file_size_bytes"', '"max_file_sise_bytes"', 1),
            "upload_policies.default.max_file_sise_bytes: no such field",
        ),
        (
            lambda text: text.replace(
                '"max_file_size_bytes": 10485760', '"max_file_size_bytes": 0'
            ),
            "upload_policies.default: max_file_size_bytes",
        ),
    ],
)
def test_a_bad_file_changes_nothing_and_says_where(tmp_path, actor, mangle, says):
    rule_create(
        data={"name": "extra", "path": "/extra/", "match_type": "prefix"},
        actor=actor,
        reason="x",
        rollback_note="y",
    )
    text = mangle(exported().replace('"extra"', '"extra-renamed"'))
    entries, rules = (
        AuditEntry.objects.count(),
        set(HeaderRule.objects.values_list("name", flat=True)),
    )
    with pytest.raises(CommandError, match="nothing was changed") as refused:
        import_file(tmp_path, text)
    assert says in str(refused.value)
    assert AuditEntry.objects.count() == entries
    assert set(HeaderRule.objects.values_list("name", flat=True)) == rules


def test_a_refusal_late_in_the_file_undoes_the_earlier_changes(tmp_path):
    document = json.loads(exported())
    document["upload_policies"]["default"]["title"] = "changed first"
    document["header_rules"]["site-wide"]["priority"] = 5000  # out of range, refused later
    entries = AuditEntry.objects.count()
    with pytest.raises(CommandError, match=r"header_rules\.site-wide: priority") as refused:
        import_file(tmp_path, json.dumps(document))
    assert "nothing was changed" in str(refused.value)
    assert UploadPolicy.objects.get(slug="default").title != "changed first"
    assert AuditEntry.objects.count() == entries


def test_the_api_import_needs_every_write_permission_and_applies(owner, editor, actor):
    from http import HTTPStatus

    from tests.uploads.ops import token_client_for

    document = json.loads(exported())
    document["upload_policies"]["default"]["title"] = "from the API"
    body = {"document": document, "reason": "review #13", "rollback_note": "re-import"}
    refused = token_client_for(owner).post("/api/v1/policies/import/", body, format="json")
    assert refused.status_code == HTTPStatus.FORBIDDEN
    api = token_client_for(editor)
    dry = api.post("/api/v1/policies/import/", {**body, "dry_run": True}, format="json").json()
    assert dry["applied"] is False
    assert dry["changes"][0].startswith("~ upload_policies.default")
    assert UploadPolicy.objects.get(slug="default").title != "from the API"
    done = api.post("/api/v1/policies/import/", body, format="json").json()
    assert done["applied"] is True
    assert UploadPolicy.objects.get(slug="default").title == "from the API"
    entry = AuditEntry.objects.order_by("-seq").first()
    assert (entry.action, entry.actor) == ("import", "user:editor")
    document["upload_policies"]["default"]["max_file_size_bytes"] = -1
    bad = api.post("/api/v1/policies/import/", body, format="json")
    assert bad.status_code == HTTPStatus.BAD_REQUEST
    assert "upload_policies.default: max_file_size_bytes" in bad.json()["detail"]


def test_an_export_imported_into_an_empty_database_reproduces_every_object(tmp_path, actor):
    """The review-in-version-control round trip: rich objects out, nothing left, all back."""
    make_policy(
        actor,
        "reports",
        title="Quarterly reports",
        max_file_size_bytes=2 * 1024 * 1024,
        quota_files=5,
        quota_period_seconds=86400,
        scan="required",
        mode="report_only",
    )
    rule_create(
        data={
            "name": "reports-area",
            "path": "^/reports/",
            "match_type": "regex",
            "priority": 300,
            **presets.STRICT,
            "permissions_policy": {"camera": [], "geolocation": ["self"]},
            "custom_headers": {"X-Robots-Tag": "noindex"},
        },
        actor=actor,
        reason="x",
        rollback_note="y",
    )
    reviewed = exported()
    before_state = database_state()
    counts = (UploadPolicy.objects.count(), HeaderRule.objects.count())
    assert counts[0] >= 2
    assert counts[1] >= 2
    for policy in UploadPolicy.objects.all():
        policy_delete(policy=policy, version=policy.version, actor=actor, **WHY)
    for rule in HeaderRule.objects.all():
        rule_delete(rule=rule, version=rule.version, actor=actor, **WHY)
    assert not UploadPolicy.objects.exists()
    assert not HeaderRule.objects.exists()
    before = AuditEntry.objects.order_by("-seq").first().seq

    printed = import_file(tmp_path, reviewed)

    assert database_state() == before_state
    assert exported() == reviewed
    assert (UploadPolicy.objects.count(), HeaderRule.objects.count()) == counts
    reports = UploadPolicy.objects.get(slug="reports")
    assert (reports.scan, reports.mode, reports.quota_files) == ("required", "report_only", 5)
    area = HeaderRule.objects.get(name="reports-area")
    assert area.custom_headers == {"X-Robots-Tag": "noindex"}
    assert area.permissions_policy == {"camera": [], "geolocation": ["self"]}
    created = AuditEntry.objects.filter(seq__gt=before)
    assert created.count() == sum(counts)
    assert set(created.values_list("action", flat=True)) == {"import"}
    assert printed.count("(new)") == sum(counts)

    assert "Nothing to change." in import_file(tmp_path, reviewed)
    assert AuditEntry.objects.filter(seq__gt=before).count() == sum(counts)


def database_state() -> dict[str, dict[str, dict]]:
    """Every policy and rule as stored, field by field (what the database holds, not what the
    export says), keyed by natural key; ids, versions and times aside."""
    aside = {"id", "version", "created_at", "updated_at"}
    return {
        model.__name__: {
            str(obj): {k: v for k, v in snapshot(obj).items() if k not in aside}
            for obj in model.objects.all()
        }
        for model in (UploadPolicy, HeaderRule)
    }


@pytest.mark.parametrize(
    ("model", "section", "key"),
    [(UploadPolicy, "upload_policies", "slug"), (HeaderRule, "header_rules", "name")],
)
def test_the_export_holds_every_editable_field(model, section, key):
    seeded = json.loads(exported())[section]
    assert seeded, "the migrations seed at least one of each"
    editable = {
        f.attname
        for f in model._meta.concrete_fields
        if f.editable and not f.primary_key and f.attname not in {"version", key}
    }
    assert all(set(fields) == editable for fields in seeded.values())


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"format": 1}', "missing section 'upload_policies'"),
        ('{"format": 1, "upload_policies": {}}', "missing section 'header_rules'"),
        ('{"format": true, "upload_policies": {}, "header_rules": {}}', "not a policies export"),
        ('{"format": 1.0, "upload_policies": {}, "header_rules": {}}', "not a policies export"),
    ],
)
def test_a_document_that_would_delete_by_omission_is_refused(tmp_path, text, says):
    policies_before = UploadPolicy.objects.count()
    with pytest.raises(CommandError, match=says):
        import_file(tmp_path, text, "--dry-run")
    with pytest.raises(CommandError, match=says):
        import_file(tmp_path, text)
    assert UploadPolicy.objects.count() == policies_before


def test_a_dry_run_refuses_what_the_real_run_would(tmp_path, default_policy):
    document = json.loads(exported())
    document["upload_policies"]["default"]["max_file_size_bytes"] = 0
    entries = AuditEntry.objects.count()
    with pytest.raises(CommandError, match=r"upload_policies\.default: max_file_size_bytes"):
        import_file(tmp_path, json.dumps(document), "--dry-run")
    document["upload_policies"]["default"]["title"] = "Checked"
    document["upload_policies"]["default"]["max_file_size_bytes"] = 1024
    printed = import_file(tmp_path, json.dumps(document), "--dry-run")
    assert "Dry run: 1 change(s) checked, none made." in printed
    default_policy.refresh_from_db()
    assert (default_policy.title, default_policy.max_file_size_bytes) == ("Default", 10485760)
    assert AuditEntry.objects.count() == entries


def test_an_import_names_its_operator_in_the_audit_log(tmp_path, editor):
    document = json.loads(exported())
    document["upload_policies"]["default"]["title"] = "Reviewed"
    import_file(tmp_path, json.dumps(document), "--actor", "editor")
    entry = AuditEntry.objects.order_by("-seq").first()
    assert (entry.action, entry.actor) == ("import", "user:editor")
    with pytest.raises(CommandError, match="--actor nobody: no active user"):
        import_file(tmp_path, exported(), "--actor", "nobody")
