from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from policies import services
from policies.models import AuditEntry, HeaderRule, UploadPolicy
from policies.presets import seeded_rules
from policies.seed import seed_defaults


def test_migrate_seeds_the_default_policy_as_system(default_policy):
    assert default_policy.max_file_size_bytes == 10 * 1024 * 1024
    assert default_policy.max_files_per_request == 1
    assert set(default_policy.allowed_types) == {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "application/pdf",
        "text/plain",
        "text/csv",
    }
    assert default_policy.image_reencode
    assert default_policy.scan == "on"
    entry = AuditEntry.objects.get(object_type="upload_policy", object_id=str(default_policy.pk))
    assert entry.actor == "system"
    assert entry.action == "create"


def test_seeding_again_changes_nothing(default_policy):
    before = AuditEntry.objects.count()
    call_command("migrate", verbosity=0)
    assert UploadPolicy.objects.filter(slug="default").count() == 1
    assert AuditEntry.objects.count() == before


@pytest.mark.django_db(transaction=True)
def test_the_default_policy_is_back_after_a_flush():
    """Transactional tests flush the database; post_migrate seeds the default policy again."""
    call_command("flush", "--no-input", verbosity=0)
    assert UploadPolicy.objects.filter(slug="default").exists()


def test_a_deleted_default_policy_stays_deleted_after_migrate(default_policy, actor):
    from policies import services

    services.policy_delete(
        policy=default_policy, version=1, actor=actor, reason="Not used", rollback_note="Roll back"
    )
    call_command("migrate", verbosity=0)
    assert not UploadPolicy.objects.filter(slug="default").exists()


# --- The seeded header rules ----------------------------------------------------------------

SEEDED = {rule["name"]: rule for rule in seeded_rules()}
SEEDED_RULE_NAMES = list(SEEDED)


def rule_entries(name: str) -> list[AuditEntry]:
    return list(
        AuditEntry.objects.filter(object_type="header_rule", object_repr=name).order_by("seq")
    )


@pytest.mark.django_db
@pytest.mark.parametrize("name", SEEDED_RULE_NAMES)
def test_migrate_seeds_each_header_rule_once_as_system(name):
    rule = HeaderRule.objects.get(name=name)
    (entry,) = rule_entries(name)
    assert entry.actor == "system"
    assert entry.actor_user is None
    assert entry.action == "create"
    assert entry.object_id == str(rule.pk)
    assert entry.reason == f"Seed the default header rule {name}."
    assert entry.rollback_note  # how to undo it is said
    assert rule.version == 1
    assert rule.enabled
    assert rule.mode == "enforce"


@pytest.mark.django_db
def test_the_seeded_rules_are_the_presets():
    for name, data in SEEDED.items():
        rule = HeaderRule.objects.get(name=name)
        assert {field: getattr(rule, field) for field in data} == data


@pytest.mark.django_db
def test_seeding_the_header_rules_again_duplicates_nothing():
    before = AuditEntry.objects.count()
    call_command("migrate", verbosity=0)
    seed_defaults()  # the post_migrate handler itself, run once more
    assert sorted(HeaderRule.objects.values_list("name", flat=True)) == sorted(SEEDED_RULE_NAMES)
    assert AuditEntry.objects.count() == before
    for name in SEEDED_RULE_NAMES:
        assert len(rule_entries(name)) == 1


@pytest.mark.django_db(transaction=True)
def test_the_header_rules_are_back_once_each_after_a_flush():
    call_command("flush", "--no-input", verbosity=0)
    assert sorted(HeaderRule.objects.values_list("name", flat=True)) == sorted(SEEDED_RULE_NAMES)
    for name in SEEDED_RULE_NAMES:
        assert [e.actor for e in rule_entries(name)] == ["system"]


@pytest.mark.django_db
def test_a_changed_seeded_rule_is_left_as_the_admin_changed_it(actor):
    rule = HeaderRule.objects.get(name="site-wide")
    services.rule_update(
        rule=rule,
        changes={"x_frame_options": "SAMEORIGIN"},
        version=rule.version,
        actor=actor,
        reason="We frame our own pages.",
        rollback_note="Set it back to DENY.",
    )
    call_command("migrate", verbosity=0)
    rule.refresh_from_db()
    assert rule.x_frame_options == "SAMEORIGIN"
    assert rule.version == 2


@pytest.mark.django_db
@pytest.mark.parametrize("name", SEEDED_RULE_NAMES)
def test_a_deleted_seeded_rule_stays_deleted_after_seeding_again(actor, name):
    rule = HeaderRule.objects.get(name=name)
    services.rule_delete(
        rule=rule, version=rule.version, actor=actor, reason="Not wanted", rollback_note="Undo"
    )
    before = AuditEntry.objects.count()
    call_command("migrate", verbosity=0)
    seed_defaults()
    assert not HeaderRule.objects.filter(name=name).exists()
    assert AuditEntry.objects.count() == before


# --- headers_reset: audited as the system actor, with the reason given ----------------------


@pytest.mark.django_db
def test_headers_reset_is_audited_as_system_with_its_reason(actor):
    site = HeaderRule.objects.get(name="site-wide")
    services.rule_update(
        rule=site,
        changes={"csp": {"default-src": ["*"]}, "x_frame_options": "SAMEORIGIN"},
        version=site.version,
        actor=actor,
        reason="Loosen",
        rollback_note="Undo",
    )
    downloads = HeaderRule.objects.get(name="downloads")
    services.rule_delete(
        rule=downloads, version=downloads.version, actor=actor, reason="Gone", rollback_note="Undo"
    )
    services.rule_create(
        data={"name": "extra", "path": "/x/", "custom_headers": {"X-Extra": "1"}},
        actor=actor,
        reason="Add",
        rollback_note="Undo",
    )
    before = AuditEntry.objects.order_by("-seq").values_list("seq", flat=True).first()
    out = io.StringIO()

    call_command("headers_reset", reason="A bad CSP locked us out of the admin", stdout=out)

    entries = list(AuditEntry.objects.filter(seq__gt=before).order_by("seq"))
    assert {(e.object_repr, e.action) for e in entries} == {
        ("site-wide", "update"),
        ("downloads", "create"),
        ("extra", "update"),
    }
    for entry in entries:
        assert entry.actor == "system"
        assert entry.actor_user is None
        assert entry.reason == "A bad CSP locked us out of the admin"
        assert entry.rollback_note
    assert "3 change(s)" in out.getvalue()
    site.refresh_from_db()
    assert site.csp == SEEDED["site-wide"]["csp"]
    assert site.x_frame_options == "DENY"
    assert HeaderRule.objects.get(name="downloads").csp == {
        "default-src": ["'none'"],
        "sandbox": [],
    }
    assert not HeaderRule.objects.get(name="extra").enabled
    call_command("audit_verify", stdout=io.StringIO())  # the chain still holds


@pytest.mark.django_db
def test_headers_reset_with_nothing_to_restore_records_nothing():
    before = AuditEntry.objects.count()
    out = io.StringIO()
    call_command("headers_reset", reason="Just checking", stdout=out)
    assert AuditEntry.objects.count() == before
    assert "0 change(s)" in out.getvalue()


@pytest.mark.django_db
@pytest.mark.parametrize("reason", ["", "   "])
def test_headers_reset_needs_a_reason(reason):
    before = AuditEntry.objects.count()
    with pytest.raises(CommandError, match="reason"):
        call_command("headers_reset", reason=reason)
    assert AuditEntry.objects.count() == before
