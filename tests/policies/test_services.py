"""Every write goes through the services, is versioned, and writes exactly one audit entry."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import transaction

from policies import services
from policies.models import AuditEntry, HeaderRule, UploadPolicy, WriteRefused
from project.errors import PolicyConflict

WHY = {"reason": "Tighten avatars", "rollback_note": "Set max size back to 10 MiB"}


def make_policy(actor, **data):
    data = {
        "slug": "avatars",
        "allowed_types": ["image/png"],
        "allowed_extensions": ["png"],
        **data,
    }
    return services.policy_create(data=data, actor=actor, **WHY)


def entries_for(obj):
    object_type = "upload_policy" if isinstance(obj, UploadPolicy) else "header_rule"
    entries = AuditEntry.objects.filter(object_type=object_type, object_id=str(obj.pk))
    return list(entries.order_by("seq"))


def test_create_writes_one_entry_with_reason_note_and_snapshot(actor):
    before = AuditEntry.objects.count()
    policy = make_policy(actor, max_file_size_bytes=2048, max_request_bytes=4096)
    assert AuditEntry.objects.count() == before + 1
    (entry,) = entries_for(policy)
    assert entry.action == "create"
    assert entry.actor == "user:editor"
    assert entry.actor_user.username == "editor"
    assert entry.reason == WHY["reason"]
    assert entry.rollback_note == WHY["rollback_note"]
    assert entry.before is None
    assert entry.after["max_file_size_bytes"] == 2048
    assert entry.diff["slug"] == {"before": None, "after": "avatars"}


def test_update_bumps_version_and_records_only_the_changed_fields(actor):
    policy = make_policy(actor)
    updated = services.policy_update(
        policy=policy, changes={"max_file_size_bytes": 1024}, version=1, actor=actor, **WHY
    )
    assert updated.version == 2
    assert UploadPolicy.objects.get(pk=policy.pk).max_file_size_bytes == 1024
    entry = entries_for(policy)[-1]
    assert entry.action == "update"
    assert entry.diff == {"max_file_size_bytes": {"before": 10 * 1024 * 1024, "after": 1024}}


def test_update_that_changes_nothing_writes_nothing(actor):
    policy = make_policy(actor)
    services.policy_update(
        policy=policy, changes={"slug": "avatars"}, version=1, actor=actor, **WHY
    )
    assert len(entries_for(policy)) == 1
    assert UploadPolicy.objects.get(pk=policy.pk).version == 1


def test_stale_version_is_refused_and_nothing_changes(actor):
    policy = make_policy(actor)
    services.policy_update(policy=policy, changes={"title": "A"}, version=1, actor=actor, **WHY)
    with pytest.raises(PolicyConflict) as caught:
        services.policy_update(policy=policy, changes={"title": "B"}, version=1, actor=actor, **WHY)
    assert caught.value.code == "version_conflict"
    assert caught.value.extra["current_version"] == 2
    assert UploadPolicy.objects.get(pk=policy.pk).title == "A"
    assert len(entries_for(policy)) == 2


@pytest.mark.parametrize(
    ("reason", "note", "field"), [("", "undo", "reason"), ("why", " ", "rollback_note")]
)
def test_reason_and_rollback_note_are_required(actor, reason, note, field):
    with pytest.raises(ValidationError) as caught:
        services.policy_create(
            data={"slug": "x", "allowed_types": [], "allowed_extensions": []},
            actor=actor,
            reason=reason,
            rollback_note=note,
        )
    assert field in caught.value.message_dict
    assert not UploadPolicy.objects.filter(slug="x").exists()


def test_invalid_policy_is_refused_with_messages_an_admin_understands(actor):
    before = AuditEntry.objects.count()
    with pytest.raises(ValidationError) as caught:
        make_policy(
            actor,
            max_file_size_bytes=6 * 1024**3,
            allowed_types=["image/png", "application/x-made-up"],
            allowed_extensions=["exe"],
        )
    errors = caught.value.message_dict
    assert any("between 1" in m or "less than or equal" in m for m in errors["max_file_size_bytes"])
    assert "application/x-made-up" in errors["allowed_types"][0]
    assert AuditEntry.objects.count() == before
    assert not UploadPolicy.objects.filter(slug="avatars").exists()


def test_extension_must_belong_to_an_allowed_type(actor):
    with pytest.raises(ValidationError) as caught:
        make_policy(actor, allowed_types=["image/png"], allowed_extensions=["png", "pdf"])
    assert "pdf" in caught.value.message_dict["allowed_extensions"][0]


def test_unknown_field_is_refused(actor):
    with pytest.raises(ValidationError) as caught:
        make_policy(actor, max_size=5)
    assert "max_size" in caught.value.message_dict


def test_version_cannot_be_set_by_a_caller(actor):
    policy = make_policy(actor)
    with pytest.raises(ValidationError):
        services.policy_update(
            policy=policy, changes={"version": 99}, version=1, actor=actor, **WHY
        )


def test_delete_records_the_last_state(actor):
    policy = make_policy(actor)
    services.policy_delete(policy=policy, version=1, actor=actor, **WHY)
    assert not UploadPolicy.objects.filter(pk=policy.pk).exists()
    entry = entries_for(policy)[-1]
    assert entry.action == "delete"
    assert entry.after is None
    assert entry.before["slug"] == "avatars"


def test_deleting_a_policy_with_uploads_answers_policy_in_use(actor, owner):
    from uploads.models import Upload

    policy = make_policy(actor)
    Upload.objects.create(
        owner=owner,
        policy=policy,
        stored_name="r4nd0m",
        original_name="a.png",
        size_bytes=1,
        sha256="0" * 64,
        content_type="image/png",
    )
    with pytest.raises(PolicyConflict) as caught:
        services.policy_delete(policy=policy, version=1, actor=actor, **WHY)
    assert caught.value.code == "policy_in_use"
    assert "disable" in caught.value.detail
    assert UploadPolicy.objects.filter(pk=policy.pk).exists()
    assert [e.action for e in entries_for(policy)] == ["create"]


def test_bulk_update_and_delete_are_refused(default_policy):
    with pytest.raises(WriteRefused):
        UploadPolicy.objects.update(max_file_size_bytes=1)
    with pytest.raises(WriteRefused):
        UploadPolicy.objects.filter(slug="default").delete()
    with pytest.raises(WriteRefused):
        HeaderRule.objects.all().delete()
    assert UploadPolicy.objects.get(slug="default").max_file_size_bytes == 10 * 1024 * 1024


def test_saving_or_deleting_outside_the_services_is_refused(default_policy):
    default_policy.max_file_size_bytes = 1
    attempts = [
        default_policy.save,
        default_policy.delete,
        lambda: UploadPolicy.objects.create(slug="sneaky"),
        lambda: UploadPolicy.objects.bulk_create([UploadPolicy(slug="bulk")]),
        lambda: UploadPolicy.objects.bulk_update([default_policy], ["max_file_size_bytes"]),
    ]
    for attempt in attempts:
        with pytest.raises(WriteRefused), transaction.atomic():
            attempt()
    assert UploadPolicy.objects.get(slug="default").max_file_size_bytes == 10 * 1024 * 1024
    assert list(UploadPolicy.objects.values_list("slug", flat=True)) == ["default"]


def test_loaddata_cannot_change_a_policy_behind_the_audit_log(default_policy, tmp_path):
    fixture = tmp_path / "evil.json"
    fixture.write_text(
        json.dumps(
            [
                {
                    "model": "policies.uploadpolicy",
                    "pk": default_policy.pk,
                    "fields": {"slug": "default", "allowed_types": ["text/html"]},
                }
            ]
        )
    )
    with pytest.raises(WriteRefused), transaction.atomic():
        call_command("loaddata", str(fixture), verbosity=0)
    assert "text/html" not in UploadPolicy.objects.get(slug="default").allowed_types


def test_audit_entries_cannot_be_changed_or_deleted(actor):
    entry = entries_for(make_policy(actor))[0]
    entry.reason = "rewritten"
    attempts = [
        entry.save,
        entry.delete,
        lambda: AuditEntry.objects.filter(pk=entry.pk).update(reason="rewritten"),
        lambda: AuditEntry.objects.all().delete(),
    ]
    for attempt in attempts:
        with pytest.raises(WriteRefused), transaction.atomic():
            attempt()
    assert AuditEntry.objects.get(pk=entry.pk).reason == WHY["reason"]


RULE = {
    "name": "test-rule",
    "match_type": "prefix",
    "path": "/",
    "csp": {"default-src": ["'self'"], "object-src": ["'none'"]},
    "custom_headers": {"X-Robots-Tag": "none"},
}


def test_rule_create_update_delete_are_audited(actor):
    rule = services.rule_create(data=RULE, actor=actor, **WHY)
    rule = services.rule_update(rule=rule, changes={"priority": 500}, version=1, actor=actor, **WHY)
    services.rule_delete(rule=rule, version=2, actor=actor, **WHY)
    entries = entries_for(rule)
    assert [e.action for e in entries] == ["create", "update", "delete"]
    assert all(e.object_type == "header_rule" for e in entries)
    assert entries[1].diff == {"priority": {"before": 100, "after": 500}}


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("custom_headers", {"X-Evil": "a\r\nSet-Cookie: x=1"}, "visible ASCII"),
        ("custom_headers", {"Set-Cookie": "x=1"}, "cannot be set"),
        ("custom_headers", {"Bad Name": "1"}, "not a valid header name"),
        ("csp", {"script-src": ["'nonce-abc'"]}, "nonce"),
        ("csp", {"script-src": ["'self'; object-src *"]}, "single source"),
        ("csp", {"script-source": ["'self'"]}, "not a CSP directive"),
        ("csp", {"script-src": ["self"]}, "must be quoted"),
        ("permissions_policy", {"teleport": []}, "not a known"),
        ("remove_headers", ["Content-Length"], "cannot be set or removed"),
        ("cache_control", "no-store\n", "visible ASCII"),
        ("path", "no-slash", "start with /"),
        ("csp", {"report-uri": ["/csp;script-src *"]}, "may not contain"),
        ("csp", {"report-uri": ["/csp,default-src *"]}, "may not contain"),
        ("csp", {"script-src": ["'sha256-abc'"]}, "not a CSP keyword or hash"),
        ("csp", {"img-src": ["a.example:99999"]}, "not a valid host"),
        (
            "csp",
            {"default-src": ["'self'"] + [f"https://h{n}.example" for n in range(600)]},
            "8 KiB",
        ),
        ("permissions_policy", {"camera": ['https://a"b.example']}, "https:// origin"),
        ("permissions_policy", {"camera": ["https://a.example/?x=1"]}, "https:// origin"),
        ("permissions_policy", {"camera": ["*", "self"]}, "nothing beside it"),
        ("reporting_endpoints", {"csp": '/x"y'}, "may not contain"),
        ("custom_headers", {"X-Foo": "1", "x-foo": "2"}, "listed twice"),
        ("custom_headers", {"Content-Disposition": "inline"}, "cannot be set"),
        ("remove_headers", ["Vary"], "cannot be set or removed"),
        ("custom_headers", {"Content-Security-Policy": "default-src *"}, "its own field"),
    ],
)
def test_rule_values_are_validated(actor, field, value, fragment):
    with pytest.raises(ValidationError) as caught:
        services.rule_create(data={**RULE, field: value}, actor=actor, **WHY)
    assert fragment in " ".join(caught.value.message_dict[field])
    assert not HeaderRule.objects.filter(name="test-rule").exists()


def test_range_errors_speak_in_units_an_admin_reads(actor):
    with pytest.raises(ValidationError) as caught:
        make_policy(actor, max_file_size_bytes=0, max_files_per_request=500)
    errors = caught.value.message_dict
    assert errors["max_file_size_bytes"] == ["Must be between 1 byte and 5 GiB."]
    assert errors["max_files_per_request"] == ["Must be between 1 and 100."]


@pytest.mark.parametrize(
    ("size", "shown"),
    [(1, "1 byte"), (1023, "1023 bytes"), (10 * 1024**2, "10 MiB"), (1536 * 1024**2, "1.5 GiB")],
)
def test_sizes_are_shown_in_binary_units(size, shown):
    from policies.units import format_bytes

    assert format_bytes(size) == shown


def test_the_database_refuses_out_of_range_values_too(default_policy):
    """Constraints hold even for a write that skips the model (raw SQL, another client)."""
    from django.db import IntegrityError, connection

    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE policies_uploadpolicy SET max_files_per_request = 1000 WHERE slug = 'default'"
        )
    assert UploadPolicy.objects.get(slug="default").max_files_per_request == 1


def test_the_audit_log_cannot_be_rewritten_through_the_orm(actor, tmp_path):
    from policies.models import AuditHead

    entry = entries_for(make_policy(actor))[0]
    fixture = tmp_path / "rewrite.json"
    fixture.write_text(
        json.dumps([{"model": "policies.auditentry", "pk": entry.pk, "fields": {"reason": "x"}}])
    )
    attempts = [
        lambda: call_command("loaddata", str(fixture), verbosity=0),
        lambda: AuditEntry.objects.bulk_create([AuditEntry(seq=999)]),
        lambda: AuditEntry.objects.bulk_update([entry], ["reason"]),
        lambda: AuditHead.objects.get(pk=1).save(),
        lambda: AuditHead.objects.update(count=0),
        lambda: AuditHead.objects.get(pk=1).delete(),
    ]
    for attempt in attempts:
        with pytest.raises(WriteRefused), transaction.atomic():
            attempt()
    assert AuditEntry.objects.get(pk=entry.pk).reason == WHY["reason"]


def test_drift_ignores_fields_added_to_the_model_after_an_entry():
    from policies.integrity import _recorded_fields_differ

    assert _recorded_fields_differ({"title": "A"}, {"title": "A", "new_field": 1}) == []
    assert _recorded_fields_differ({"title": "A", "version": 1}, {"title": "B", "version": 2}) == [
        "title"
    ]


def test_hsts_preload_needs_subdomains_and_a_year(actor):
    data = {**RULE, "hsts_max_age": 86_400, "hsts_preload": True}
    with pytest.raises(ValidationError) as caught:
        services.rule_create(data=data, actor=actor, **WHY)
    assert "includeSubDomains" in caught.value.message_dict["hsts_preload"][0]
    data.update(hsts_max_age=31_536_000, hsts_include_subdomains=True)
    assert services.rule_create(data=data, actor=actor, **WHY).hsts_preload
