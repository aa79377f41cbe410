"""The audit chain: rollback in one step, and tamper evidence that audit_verify reports."""

from __future__ import annotations

import itertools
import threading

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import connection, connections

from policies import audit, services
from policies.models import AuditEntry, AuditHead, UploadPolicy
from project.errors import PolicyConflict
from tests.policies.test_services import WHY, entries_for, make_policy

UNDO = {"reason": "That change broke uploads"}


def verify(*args: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command("audit_verify", *args, stdout=out)
    return out.getvalue()


def verify_fails(*args: str) -> str:
    with pytest.raises(CommandError) as caught:
        verify(*args)
    assert caught.value.returncode == 1
    return str(caught.value)


def test_rollback_of_an_update_restores_the_before_state(actor):
    policy = make_policy(actor)
    services.policy_update(
        policy=policy, changes={"max_file_size_bytes": 1024}, version=1, actor=actor, **WHY
    )
    update = entries_for(policy)[-1]
    rollback = services.change_rollback(entry=update, actor=actor, **UNDO)
    restored = UploadPolicy.objects.get(pk=policy.pk)
    assert restored.max_file_size_bytes == 10 * 1024 * 1024
    assert restored.version == 3
    assert rollback.action == "rollback"
    assert rollback.rolls_back_seq == update.seq
    assert rollback.reason == UNDO["reason"]
    assert rollback.rollback_note
    assert rollback.diff == {"max_file_size_bytes": {"before": 1024, "after": 10 * 1024 * 1024}}
    assert len(entries_for(policy)) == 3


def test_a_deleted_policy_comes_back_by_rollback(actor):
    policy = make_policy(actor, title="Avatars", max_file_size_bytes=4096)
    pk = policy.pk
    services.policy_delete(policy=policy, version=1, actor=actor, **WHY)
    delete = entries_for(policy)[-1]
    services.change_rollback(entry=delete, actor=actor, **UNDO)
    back = UploadPolicy.objects.get(pk=pk)
    assert (back.slug, back.title, back.max_file_size_bytes) == ("avatars", "Avatars", 4096)
    assert back.version == 2
    assert [e.action for e in entries_for(back)] == ["create", "delete", "rollback"]


def test_rolling_back_a_create_deletes_the_object(actor):
    policy = make_policy(actor)
    services.change_rollback(entry=entries_for(policy)[0], actor=actor, **UNDO)
    assert not UploadPolicy.objects.filter(pk=policy.pk).exists()


def test_rolling_back_an_older_entry_is_refused_naming_the_later_ones(actor):
    policy = make_policy(actor)
    services.policy_update(policy=policy, changes={"title": "A"}, version=1, actor=actor, **WHY)
    services.policy_update(policy=policy, changes={"title": "B"}, version=2, actor=actor, **WHY)
    first_update, second_update = entries_for(policy)[1:]
    with pytest.raises(PolicyConflict) as caught:
        services.change_rollback(entry=first_update, actor=actor, **UNDO)
    assert caught.value.code == "rollback_conflict"
    assert caught.value.extra["later_entries"] == [second_update.seq]
    assert f"#{second_update.seq}" in caught.value.detail
    assert UploadPolicy.objects.get(pk=policy.pk).title == "B"
    assert len(entries_for(policy)) == 3


def test_a_rollback_can_itself_be_rolled_back(actor):
    policy = make_policy(actor)
    services.policy_update(policy=policy, changes={"title": "A"}, version=1, actor=actor, **WHY)
    rollback = services.change_rollback(entry=entries_for(policy)[-1], actor=actor, **UNDO)
    assert UploadPolicy.objects.get(pk=policy.pk).title == ""
    services.change_rollback(entry=rollback, actor=actor, **UNDO)
    assert UploadPolicy.objects.get(pk=policy.pk).title == "A"


def test_rollback_needs_a_reason(actor):
    policy = make_policy(actor)
    with pytest.raises(Exception, match="why"):
        services.change_rollback(entry=entries_for(policy)[0], actor=actor, reason=" ")
    assert UploadPolicy.objects.filter(pk=policy.pk).exists()


def test_entries_carry_gapless_seq_and_a_hash_chain(actor):
    policy = make_policy(actor)
    services.policy_update(policy=policy, changes={"title": "A"}, version=1, actor=actor, **WHY)
    entries = list(AuditEntry.objects.order_by("seq"))
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    assert entries[0].prev_hash == "0" * 64
    for earlier, later in itertools.pairwise(entries):
        assert later.prev_hash == earlier.entry_hash


def test_audit_verify_passes_on_a_clean_log(actor):
    make_policy(actor)
    head = AuditEntry.objects.order_by("-seq").first()
    out = verify()
    assert f"{AuditEntry.objects.count()} entries" in out
    assert head.entry_hash in out
    assert head.entry_hash in verify("--expect-head", head.entry_hash)


def raw(sql: str, *params) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def three_entries(actor) -> list[AuditEntry]:
    policy = make_policy(actor)
    services.policy_update(policy=policy, changes={"title": "A"}, version=1, actor=actor, **WHY)
    services.policy_update(policy=policy, changes={"title": "B"}, version=2, actor=actor, **WHY)
    return list(AuditEntry.objects.order_by("seq"))


def test_audit_verify_fails_after_a_raw_edit_of_one_row(actor):
    entries = three_entries(actor)
    target = entries[-2]
    raw("UPDATE policies_auditentry SET reason = %s WHERE seq = %s", "nothing to see", target.seq)
    assert f"entry #{target.seq} was altered" in verify_fails()


def test_audit_verify_fails_after_a_raw_edit_of_a_snapshot(actor):
    entries = three_entries(actor)
    target = entries[-1]
    raw("UPDATE policies_auditentry SET actor = %s WHERE seq = %s", "user:someone-else", target.seq)
    assert f"#{target.seq}" in verify_fails()


def test_audit_verify_fails_when_the_newest_row_is_deleted(actor):
    entries = three_entries(actor)
    raw("DELETE FROM policies_auditentry WHERE seq = %s", entries[-1].seq)
    message = verify_fails()
    assert f"entry #{entries[-1].seq} is missing" in message


def test_audit_verify_fails_when_a_middle_row_is_deleted(actor):
    entries = three_entries(actor)
    raw("DELETE FROM policies_auditentry WHERE seq = %s", entries[1].seq)
    assert f"entry #{entries[1].seq} is missing" in verify_fails()


def test_audit_verify_fails_when_two_rows_are_swapped(actor):
    entries = three_entries(actor)
    a, b = entries[-2].seq, entries[-1].seq
    raw("UPDATE policies_auditentry SET seq = %s WHERE seq = %s", 10_000_000, a)
    raw("UPDATE policies_auditentry SET seq = %s WHERE seq = %s", a, b)
    raw("UPDATE policies_auditentry SET seq = %s WHERE seq = %s", b, 10_000_000)
    assert f"#{a}" in verify_fails()


def test_audit_verify_fails_when_the_head_is_rewound(actor):
    entries = three_entries(actor)
    raw("UPDATE policies_audithead SET count = %s", len(entries) - 1)
    assert "head was altered" in verify_fails()


def test_audit_verify_catches_a_restored_old_backup_with_expect_head(actor):
    make_policy(actor)
    head = AuditEntry.objects.order_by("-seq").first().entry_hash
    services.policy_update(
        policy=UploadPolicy.objects.get(slug="avatars"),
        changes={"title": "A"},
        version=1,
        actor=actor,
        **WHY,
    )
    verify()  # the newer log is intact by itself
    assert "not the expected" in verify_fails("--expect-head", head)


def test_old_keys_still_verify_after_rotation(actor, settings):
    make_policy(actor)
    old_key = settings.AUDIT_HMAC_KEY
    settings.AUDIT_HMAC_KEY = "rotated-audit-key-" + "z" * 40
    verify_fails()
    settings.AUDIT_HMAC_OLD_KEYS = [old_key]
    services.policy_update(
        policy=UploadPolicy.objects.get(slug="avatars"),
        changes={"title": "after rotation"},
        version=1,
        actor=actor,
        **WHY,
    )
    assert "intact" in verify()
    keys = set(AuditEntry.objects.values_list("key_id", flat=True))
    assert len(keys) == 2


@pytest.mark.django_db(transaction=True)
def test_eight_concurrent_appends_never_fork_the_chain(editor):
    """Eight threads change policies at once (released together at a barrier)."""
    actor = services.Actor.for_user(editor)
    unexpected = race(
        *(
            lambda n=n: services.policy_create(
                data={"slug": f"p{n}", "allowed_types": [], "allowed_extensions": []},
                actor=actor,
                **WHY,
            )
            for n in range(8)
        ),
        tolerated=(),
    )
    assert unexpected == []
    entries = list(AuditEntry.objects.order_by("seq"))
    prev_hashes = [e.prev_hash for e in entries]
    assert len(prev_hashes) == len(set(prev_hashes))
    assert UploadPolicy.objects.filter(slug__startswith="p").count() == 8
    assert "intact" in verify()


def test_audit_verify_fails_when_a_row_is_inserted(actor):
    entries = three_entries(actor)
    last = entries[-1]
    copied = (
        "created_at, actor, actor_user_id, action, object_type, object_id, object_repr, before, "
        "after, diff, reason, rollback_note, rolls_back_seq, request_id, client_ip, key_id"
    )
    raw(
        f"INSERT INTO policies_auditentry (seq, prev_hash, entry_hash, {copied}) "  # noqa: S608
        f"SELECT %s, %s, %s, {copied} FROM policies_auditentry WHERE seq = %s",
        last.seq + 1,
        last.entry_hash,
        "f" * 64,
        last.seq,
    )
    assert f"#{last.seq + 1}" in verify_fails()


def test_audit_verify_fails_on_a_wiped_log(actor):
    make_policy(actor)
    raw("DELETE FROM policies_auditentry")
    raw("DELETE FROM policies_audithead")
    assert "head is missing" in verify_fails()


def test_audit_verify_fails_when_a_policy_is_changed_behind_the_log(actor):
    policy = make_policy(actor)
    raw("UPDATE policies_uploadpolicy SET max_file_size_bytes = %s WHERE id = %s", 5, policy.pk)
    message = verify_fails()
    assert "upload policy avatars differs from audit entry" in message
    assert "max_file_size_bytes" in message


def test_audit_verify_fails_when_a_policy_is_deleted_behind_the_log(actor):
    policy = make_policy(actor)
    raw("DELETE FROM policies_uploadpolicy WHERE id = %s", policy.pk)
    assert "avatars is gone" in verify_fails()


def test_audit_verify_fails_when_a_rule_appears_without_an_entry(actor):
    rule = services.rule_create(data={"name": "site", "path": "/"}, actor=actor, **WHY)
    raw("UPDATE policies_headerrule SET name = %s WHERE id = %s", "renamed", rule.pk)
    assert "header rule renamed differs" in verify_fails()


OLD_KEY = "test-audit-key-" + "y" * 40  # tests/settings.py
NEW_KEY = "rotated-audit-key-" + "z" * 40


def rotate(settings, actor) -> UploadPolicy:
    """An entry under the old key, then the rotation, then an entry under the new key."""
    make_policy(actor)
    settings.AUDIT_HMAC_KEY, settings.AUDIT_HMAC_OLD_KEYS = NEW_KEY, [OLD_KEY]
    policy = UploadPolicy.objects.get(slug="avatars")
    return services.policy_update(
        policy=policy, changes={"title": "A"}, version=1, actor=actor, **WHY
    )


def test_a_process_still_on_the_old_key_cannot_append_after_the_rotation(actor, settings):
    policy = rotate(settings, actor)
    settings.AUDIT_HMAC_KEY, settings.AUDIT_HMAC_OLD_KEYS = OLD_KEY, []
    with pytest.raises(ImproperlyConfigured, match="rotated"):
        services.policy_update(policy=policy, changes={"title": "B"}, version=2, actor=actor, **WHY)
    assert UploadPolicy.objects.get(slug="avatars").title == "A"


def test_a_retired_key_cannot_sign_entries_after_the_rotation(actor, settings, monkeypatch):
    policy = rotate(settings, actor)
    assert "intact" in verify()
    # Someone who kept the retired key signs a change with it (bypassing the process check)...
    settings.AUDIT_HMAC_KEY = OLD_KEY
    both = {audit.key_id_for(k): k for k in (OLD_KEY, NEW_KEY)}
    with monkeypatch.context() as patch:
        patch.setattr(audit, "_keys", lambda: both)
        services.policy_update(policy=policy, changes={"title": "B"}, version=2, actor=actor, **WHY)
    # ...and the real configuration refuses it.
    settings.AUDIT_HMAC_KEY = NEW_KEY
    assert "retired key" in verify_fails()


def test_a_retired_key_cannot_re_sign_a_truncated_head(actor, settings):
    policy = rotate(settings, actor)
    services.policy_update(policy=policy, changes={"title": "B"}, version=2, actor=actor, **WHY)
    entries = list(AuditEntry.objects.order_by("seq"))
    previous = entries[-2]  # signed with the new key, like the newest one being removed
    assert previous.key_id == audit.key_id_for(NEW_KEY)
    raw("DELETE FROM policies_auditentry WHERE seq = %s", entries[-1].seq)
    forged = AuditHead(
        count=previous.seq, last_hash=previous.entry_hash, key_id=audit.key_id_for(OLD_KEY)
    )
    payload = {"count": forged.count, "last_hash": forged.last_hash, "key_id": forged.key_id}
    raw(
        "UPDATE policies_audithead SET count = %s, last_hash = %s, key_id = %s, head_hmac = %s",
        forged.count,
        forged.last_hash,
        forged.key_id,
        audit._mac(OLD_KEY, payload),
    )
    assert "not signed with the key of the last entry" in verify_fails()


def test_ipv4_mapped_client_addresses_are_recorded_plainly(actor, rf, editor):
    request = rf.post("/admin/", REMOTE_ADDR="::ffff:203.0.113.9", HTTP_X_REQUEST_ID="req-42")
    request.user = editor
    request.request_id = "req-42"
    policy = services.policy_create(
        data={"slug": "mapped", "allowed_types": [], "allowed_extensions": []},
        actor=services.Actor.from_request(request),
        **WHY,
    )
    (entry,) = entries_for(policy)
    assert entry.client_ip == "203.0.113.9"
    assert entry.request_id == "req-42"
    assert "intact" in verify()


def race(*works, tolerated: type[BaseException] = PolicyConflict) -> list[BaseException]:
    """Run each callable in its own thread, released together; return unexpected errors."""
    barrier = threading.Barrier(len(works))
    unexpected: list[BaseException] = []

    def run(work) -> None:
        try:
            barrier.wait(timeout=30)
            work()
        except tolerated:
            pass  # the loser of a race is told so; that is the point
        except BaseException as exc:  # a thread cannot fail the test itself: report it
            unexpected.append(exc)
        finally:
            connections.close_all()  # this thread's own connection

    threads = [threading.Thread(target=run, args=(work,)) for work in works]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return unexpected


@pytest.mark.django_db(transaction=True)
def test_concurrent_update_and_rollback_of_one_policy_never_deadlock(editor):
    """Both paths take the audit lock first, so racing them ends in success or a clean 409."""
    actor = services.Actor.for_user(editor)
    policy = make_policy(actor)
    services.policy_update(policy=policy, changes={"title": "A"}, version=1, actor=actor, **WHY)
    for round_ in range(4):
        latest = entries_for(policy)[-1]
        version = UploadPolicy.objects.get(pk=policy.pk).version
        unexpected = race(
            lambda v=version, r=round_: services.policy_update(
                policy=policy, changes={"title": f"r{r}"}, version=v, actor=actor, **WHY
            ),
            lambda e=latest: services.change_rollback(entry=e, actor=actor, **UNDO),
        )
        assert unexpected == []
    assert "intact" in verify()
