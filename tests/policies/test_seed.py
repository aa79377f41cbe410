from __future__ import annotations

import pytest
from django.core.management import call_command

from policies.models import AuditEntry, UploadPolicy


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
