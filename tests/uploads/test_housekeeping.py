"""`manage.py uploads_purge_expired` and `uploads_reconcile` against a seeded mess: uploads
stored through the real service, aged rows, files removed or left behind on disk."""

from __future__ import annotations

import io
import os
import time
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.core.management import CommandError, call_command
from django.utils import timezone

from policies.models import UploadPolicy
from policies.services import policy_create, policy_update
from policies.units import format_bytes
from uploads import housekeeping, services
from uploads.management.commands.uploads_reconcile import Command as ReconcileCommand
from uploads.models import Upload, UploadEvent, UploadStatus

pytestmark = pytest.mark.django_db

WHY = {"reason": "Housekeeping test.", "rollback_note": "Set it back."}
NOW = timezone.now


# The seeded mess ---------------------------------------------------------------------------------


def store(owner, policy: UploadPolicy, name: str, content: bytes, *, days_old: float = 0) -> Upload:
    """An upload as the pipeline stores it: a temporary file moved into storage, its row and
    its "accepted" event; then aged by moving its created_at back."""
    temp = TemporaryUploadedFile(name, "text/plain", len(content), None)
    temp.write(content)
    size, sha256 = services.size_and_sha256(temp)
    accepted = services.AcceptedFile(
        facts=services.FileFacts(
            filename=name, size=size, sha256=sha256, content_type="text/plain"
        ),
        original_name=name,
        content=temp,
        size=size,
        sha256=sha256,
        reencoded=False,
    )
    uploader = services.Uploader(user=owner, client_ip="192.0.2.7", request_id="seed")
    (upload,) = services.uploads_create(
        policy=policy, policy_audit_seq=None, files=[accepted], uploader=uploader
    )
    temp.close()
    if days_old:
        Upload.objects.filter(pk=upload.pk).update(created_at=NOW() - timedelta(days=days_old))
        upload.refresh_from_db()
    return upload


def set_retention(policy: UploadPolicy, days: int | None, actor) -> UploadPolicy:
    policy.refresh_from_db()
    return policy_update(
        policy=policy, changes={"retention_days": days}, version=policy.version, actor=actor, **WHY
    )


def new_policy(slug: str, actor, *, retention_days: int | None = None) -> UploadPolicy:
    data = {"slug": slug, "allowed_types": ["text/plain"], "allowed_extensions": ["txt"]}
    if retention_days is not None:
        data["retention_days"] = retention_days
    return policy_create(data=data, actor=actor, **WHY)


def on_disk(upload_dirs, upload: Upload):
    return upload_dirs.store / upload.stored_name


def aged(path, minutes: float):
    then = time.time() - minutes * 60
    os.utime(path, (then, then), follow_symlinks=False)
    return path


def stray_file(upload_dirs, name: str, content: bytes, *, minutes_old: float):
    path = upload_dirs.store / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return aged(path, minutes_old)


def removal_events() -> list[UploadEvent]:
    return list(UploadEvent.objects.exclude(code=services.ACCEPTED).order_by("filename"))


def run(command: str, *args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(command, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def state(upload_dirs) -> tuple:
    """Everything a housekeeping run could change."""
    rows = sorted(Upload.objects.values_list("pk", "status", "created_at"))
    files = sorted((str(p), p.read_bytes()) for p in upload_dirs.stored_files())
    events = sorted(UploadEvent.objects.values_list("pk", "code"))
    return rows, files, events


# uploads_purge_expired ---------------------------------------------------------------------------


@pytest.fixture
def expiry_mess(
    owner, other_user, default_policy, actor, upload_dirs, django_capture_on_commit_callbacks
):
    """default keeps 30 days, scans 7, archive forever; uploads on both sides of each limit,
    and one the owner deleted (its file already removed) long ago."""
    default = set_retention(default_policy, 30, actor)
    scans = new_policy("scans", actor)
    set_retention(scans, 7, actor)
    archive = new_policy("archive", actor)
    mess = {
        "old_report": store(owner, default, "old report.txt", b"a" * 1000, days_old=40),
        "old_notes": store(other_user, default, "old notes.txt", b"b" * 24, days_old=31),
        "recent": store(owner, default, "recent.txt", b"c" * 10, days_old=29),
        "old_scan": store(owner, scans, "old scan.txt", b"d" * 2048, days_old=8),
        "new_scan": store(owner, scans, "new scan.txt", b"e" * 5, days_old=6),
        "ancient": store(owner, archive, "ancient.txt", b"f" * 7, days_old=3650),
        "deleted": store(owner, default, "deleted.txt", b"g" * 99, days_old=45),
    }
    with django_capture_on_commit_callbacks(execute=True):
        services.upload_delete(upload=mess["deleted"])
    assert not on_disk(upload_dirs, mess["deleted"]).exists()
    assert [e.code for e in removal_events()] == [services.DELETED]
    return mess


def test_expired_uploads_go_with_one_event_each(upload_dirs, expiry_mess):
    out, err = run("uploads_purge_expired")

    assert out.splitlines() == [
        "default (30 day(s)): 2 upload(s) expired (1 KiB), 1 row(s) of deleted uploads cleared.",
        "scans (7 day(s)): 1 upload(s) expired (2 KiB), 0 row(s) of deleted uploads cleared.",
        "Total: 3 upload(s) expired (3 KiB), 1 row(s) of deleted uploads cleared.",
    ]
    assert err == ""
    gone = ["old_report", "old_notes", "old_scan", "deleted"]
    kept = ["recent", "new_scan", "ancient"]
    for key in gone:
        assert not Upload.objects.filter(pk=expiry_mess[key].pk).exists(), key
        assert not on_disk(upload_dirs, expiry_mess[key]).exists(), key
    for key in kept:
        upload = Upload.objects.get(pk=expiry_mess[key].pk)
        assert upload.status == UploadStatus.STORED
        assert on_disk(upload_dirs, upload).read_bytes() == (
            expiry_mess[key].size_bytes * {"recent": b"c", "new_scan": b"e", "ancient": b"f"}[key]
        )
    expired = [
        (e.code, e.filename, e.policy_slug, e.size_bytes, e.sha256, e.user_id)
        for e in removal_events()
        if e.code == services.EXPIRED
    ]
    assert expired == [
        (services.EXPIRED, u.original_name, u.policy.slug, u.size_bytes, u.sha256, None)
        for u in (expiry_mess["old_notes"], expiry_mess["old_report"], expiry_mess["old_scan"])
    ]
    # The owner's deletion already has its event: clearing the row adds none.
    assert [e.code for e in removal_events()].count(services.DELETED) == 1


def test_a_second_run_finds_nothing(upload_dirs, expiry_mess):
    run("uploads_purge_expired")
    after_first = state(upload_dirs)

    out, _ = run("uploads_purge_expired")

    assert out.splitlines()[-1] == (
        "Total: 0 upload(s) expired (0 bytes), 0 row(s) of deleted uploads cleared."
    )
    assert state(upload_dirs) == after_first


def test_dry_run_lists_what_would_go_and_changes_nothing(upload_dirs, expiry_mess):
    before = state(upload_dirs)

    out, _ = run("uploads_purge_expired", "--dry-run")

    def line(key: str, what: str = "expire upload") -> str:
        u = expiry_mess[key]
        return (
            f"Would {what} {u.pk} ({u.policy.slug}, {u.original_name!r}, "
            f"{format_bytes(u.size_bytes)}, created {u.created_at:%Y-%m-%d %H:%M})"
        )

    assert out.splitlines() == [
        line("deleted", "clear the row of deleted upload"),
        line("old_report"),
        line("old_notes"),
        line("old_scan"),
        "default (30 day(s)): 2 upload(s) would expire (1 KiB), "
        "1 row(s) of deleted uploads would be cleared.",
        "scans (7 day(s)): 1 upload(s) would expire (2 KiB), "
        "0 row(s) of deleted uploads would be cleared.",
        "Total: 3 upload(s) would expire (3 KiB), 1 row(s) of deleted uploads would be cleared.",
    ]
    assert state(upload_dirs) == before


def test_without_any_retention_nothing_expires(owner, default_policy, upload_dirs):
    upload = store(owner, default_policy, "old.txt", b"keep", days_old=10_000)
    before = state(upload_dirs)

    out, _ = run("uploads_purge_expired")

    assert out == "No policy has a retention period: nothing expires.\n"
    assert state(upload_dirs) == before
    assert on_disk(upload_dirs, upload).exists()


def test_retention_is_measured_from_now_to_the_second(owner, default_policy, actor, upload_dirs):
    policy = set_retention(default_policy, 1, actor)
    now = NOW()
    on_the_edge = store(owner, policy, "edge.txt", b"1")
    just_past = store(owner, policy, "past.txt", b"2")
    Upload.objects.filter(pk=on_the_edge.pk).update(created_at=now - timedelta(days=1))
    Upload.objects.filter(pk=just_past.pk).update(created_at=now - timedelta(days=1, seconds=1))

    result = housekeeping.purge_expired_uploads(now=now)

    assert result.expired == 1
    assert list(Upload.objects.values_list("pk", flat=True)) == [on_the_edge.pk]
    assert on_disk(upload_dirs, on_the_edge).exists()
    assert not on_disk(upload_dirs, just_past).exists()


def test_a_backlog_goes_in_batches(owner, default_policy, actor, upload_dirs, monkeypatch):
    policy = set_retention(default_policy, 30, actor)
    for n in range(5):
        store(owner, policy, f"old {n}.txt", b"x" * (n + 1), days_old=31)
    keep = store(owner, policy, "new.txt", b"new", days_old=1)
    batches = []
    real = housekeeping._expire_batch
    monkeypatch.setattr(
        housekeeping,
        "_expire_batch",
        lambda batch, *args: batches.append(len(batch)) or real(batch, *args),
    )

    result = housekeeping.purge_expired_uploads(batch_size=2)

    assert batches == [2, 2, 1]
    assert (result.expired, result.expired_bytes) == (5, 15)
    assert list(Upload.objects.values_list("pk", flat=True)) == [keep.pk]
    assert upload_dirs.stored_files() == [on_disk(upload_dirs, keep)]
    assert UploadEvent.objects.filter(code=services.EXPIRED).count() == 5


def test_a_failed_batch_keeps_its_rows_and_files(
    owner, default_policy, actor, upload_dirs, monkeypatch
):
    policy = set_retention(default_policy, 30, actor)
    for n in range(3):
        store(owner, policy, f"old {n}.txt", b"x", days_old=31)
    before = state(upload_dirs)
    real = services.record_removal
    calls = []

    def fail_on_the_second(**kwargs):
        calls.append(kwargs["upload"].pk)
        if len(calls) == 2:
            raise RuntimeError("database went away")
        return real(**kwargs)

    monkeypatch.setattr(services, "record_removal", fail_on_the_second)
    with pytest.raises(RuntimeError, match="database went away"):
        run("uploads_purge_expired")

    assert len(calls) == 2
    assert state(upload_dirs) == before  # no row, event or file went


def test_a_file_that_cannot_be_deleted_is_reported_not_fatal(
    owner, default_policy, actor, upload_dirs, monkeypatch, caplog
):
    policy = set_retention(default_policy, 30, actor)
    stuck = store(owner, policy, "stuck.txt", b"stuck", days_old=31)
    other = store(owner, policy, "other.txt", b"other", days_old=31)
    storage = services.storage()
    real_delete = storage.delete

    def delete(name):
        if name == stuck.stored_name:
            raise PermissionError(13, "Permission denied")
        real_delete(name)

    monkeypatch.setattr(storage, "delete", delete)

    out, err = run("uploads_purge_expired")

    assert out.splitlines()[-1].startswith("Total: 2 upload(s) expired")
    assert err == (
        "Could not remove 1 file(s) whose uploads expired (see the log; "
        f"`uploads_reconcile --fix` removes them later): {stuck.stored_name}\n"
    )
    assert f"could not remove the file {stuck.stored_name}" in caplog.text
    assert not Upload.objects.exists()  # the rows went all the same
    assert UploadEvent.objects.filter(code=services.EXPIRED).count() == 2
    assert on_disk(upload_dirs, stuck).exists()
    assert not on_disk(upload_dirs, other).exists()

    # Left behind without a row, it is an orphan for uploads_reconcile once old enough.
    monkeypatch.undo()
    aged(on_disk(upload_dirs, stuck), 61)
    out, _ = run("uploads_reconcile", "--fix")
    assert f"Removed orphan file {stuck.stored_name}" in out.splitlines()
    assert upload_dirs.stored_files() == []


# uploads_reconcile -------------------------------------------------------------------------------


@pytest.fixture
def reconcile_mess(owner, default_policy, upload_dirs):
    """Two good uploads; one whose file vanished behind its row's back; a file a failed deletion
    left behind; an old stray file and a fresh one (an upload whose row is committing)."""
    good = store(owner, default_policy, "good.txt", b"good")
    also_good = store(owner, default_policy, "also good.txt", b"also good", days_old=400)
    aged(on_disk(upload_dirs, also_good), 400 * 24 * 60)  # age alone never makes an orphan
    missing = store(owner, default_policy, "missing.txt", b"missing")
    os.remove(on_disk(upload_dirs, missing))
    deleted = store(owner, default_policy, "deleted.txt", b"deleted")
    services.upload_delete(upload=deleted)  # its on_commit never runs here: the file stays
    aged(on_disk(upload_dirs, deleted), 3 * 60)
    old_orphan = stray_file(upload_dirs, "ab/ab" + "0" * 30, b"x" * 3000, minutes_old=90)
    fresh = stray_file(upload_dirs, "cd/cd" + "1" * 30, b"in flight", minutes_old=5)
    return {
        "good": good,
        "also_good": also_good,
        "missing": missing,
        "deleted": deleted,
        "old_orphan": old_orphan,
        "fresh": fresh,
    }


def reconcile(*args: str) -> tuple[str, CommandError | None]:
    out = io.StringIO()
    try:
        call_command("uploads_reconcile", *args, stdout=out)
    except CommandError as error:
        return out.getvalue(), error
    return out.getvalue(), None


def test_the_report_lists_orphans_and_missing_files_and_fails(upload_dirs, reconcile_mess):
    before = state(upload_dirs)
    missing, deleted = reconcile_mess["missing"], reconcile_mess["deleted"]

    out, error = reconcile()

    orphans = sorted(
        [
            ("ab/ab000000000000000000000000000000", "2.9 KiB, 90 min old"),
            (deleted.stored_name, "7 bytes, 3 h old"),
        ]
    )
    assert out.splitlines() == [
        *(f"Orphan file {name}: {facts}" for name, facts in orphans),
        f"Missing file of upload {missing.pk} (owner owner, 'missing.txt', policy default): "
        f"{missing.stored_name}",
        "1 unnamed file(s) younger than 60 minute(s) left alone: uploads in flight.",
        "2 orphan file(s), 1 upload(s) missing their file.",
    ]
    assert error is not None
    assert error.returncode == 1
    assert "out of step" in str(error)
    assert state(upload_dirs) == before


def test_fix_removes_old_orphans_and_marks_missing_files(upload_dirs, reconcile_mess):
    missing, deleted = reconcile_mess["missing"], reconcile_mess["deleted"]

    out, error = reconcile("--fix")

    assert error is None
    assert out.splitlines()[-4:] == [
        *(
            f"Removed orphan file {name}"
            for name in sorted(["ab/ab000000000000000000000000000000", deleted.stored_name])
        ),
        f"Marked upload {missing.pk} deleted: its file is missing",
        "Fixed: 2 orphan file(s) removed, 1 upload(s) marked deleted.",
    ]
    assert sorted(upload_dirs.stored_files()) == sorted(
        [
            on_disk(upload_dirs, reconcile_mess["good"]),
            on_disk(upload_dirs, reconcile_mess["also_good"]),
            reconcile_mess["fresh"],
        ]
    )
    assert Upload.objects.get(pk=missing.pk).status == UploadStatus.DELETED
    for key in ("good", "also_good"):
        assert Upload.objects.get(pk=reconcile_mess[key].pk).status == UploadStatus.STORED
    event = UploadEvent.objects.get(code=services.FILE_MISSING)
    assert (event.filename, event.policy_slug, event.size_bytes, event.user_id) == (
        "missing.txt",
        "default",
        len(b"missing"),
        None,
    )
    assert UploadEvent.objects.filter(code=services.DELETED).count() == 1  # the owner's, earlier


def test_a_rerun_after_fix_is_clean(upload_dirs, reconcile_mess):
    reconcile("--fix")
    after_fix = state(upload_dirs)

    out, error = reconcile()

    assert error is None
    assert out.splitlines() == [
        "1 unnamed file(s) younger than 60 minute(s) left alone: uploads in flight.",
        "0 orphan file(s), 0 upload(s) missing their file.",
    ]
    assert reconcile("--fix")[1] is None
    assert state(upload_dirs) == after_fix


def test_min_age_decides_when_a_stray_file_is_an_orphan(upload_dirs, reconcile_mess):
    out, _ = reconcile("--min-age-minutes", "4")
    assert (
        f"Orphan file {reconcile_mess['fresh'].relative_to(upload_dirs.store)}: 9 bytes, 5 min old"
        in out
    )
    assert "3 orphan file(s)" in out

    out, _ = reconcile("--min-age-minutes", "120")
    assert "2 unnamed file(s) younger than 120 minute(s)" in out
    assert "1 orphan file(s)" in out


@pytest.mark.parametrize("minutes", ["0", "-1", "soon"])
def test_min_age_must_be_a_positive_number_of_minutes(upload_dirs, minutes):
    with pytest.raises(CommandError, match="--min-age-minutes N must be a positive whole number"):
        call_command("uploads_reconcile", "--min-age-minutes", minutes, stdout=io.StringIO())


def test_exit_codes_from_the_command_line(upload_dirs, reconcile_mess, monkeypatch, capsys):
    """manage.py exits 1 while out of step (for monitoring), 0 once fixed."""
    # run_from_argv closes the connections when done: that would end the test's transaction.
    # --skip-checks: the system checks are tested elsewhere and import every app's views.
    monkeypatch.setattr("django.core.management.base.connections.close_all", lambda: None)

    with pytest.raises(SystemExit) as exited:
        ReconcileCommand().run_from_argv(["manage.py", "uploads_reconcile", "--skip-checks"])
    assert exited.value.code == 1
    assert "CommandError: Storage and uploads are out of step" in capsys.readouterr().err

    ReconcileCommand().run_from_argv(
        ["manage.py", "uploads_reconcile", "--fix", "--skip-checks"]
    )  # no SystemExit
    ReconcileCommand().run_from_argv(["manage.py", "uploads_reconcile", "--skip-checks"])
    assert "0 orphan file(s), 0 upload(s) missing their file." in capsys.readouterr().out


def test_an_empty_storage_is_in_step(upload_dirs):
    out, error = reconcile()
    assert (out, error) == ("0 orphan file(s), 0 upload(s) missing their file.\n", None)


def test_links_are_never_followed_and_the_temp_dir_is_left_alone(
    settings, upload_dirs, tmp_path, owner, default_policy
):
    outside = tmp_path / "outside"
    outside.mkdir()
    precious = outside / "precious.txt"
    precious.write_bytes(b"keep me")
    aged(precious, 600)
    (upload_dirs.store / "ef").mkdir()
    link_to_file = upload_dirs.store / "ef" / ("ef" + "2" * 30)
    link_to_file.symlink_to(precious)
    aged(link_to_file, 600)
    link_to_folder = upload_dirs.store / "linked"
    link_to_folder.symlink_to(outside, target_is_directory=True)
    aged(link_to_folder, 600)
    temp_inside = upload_dirs.store / "upload-tmp"
    temp_inside.mkdir()
    settings.FILE_UPLOAD_TEMP_DIR = str(temp_inside)
    upload = store(owner, default_policy, "fine.txt", b"fine")
    left = stray_file(
        upload_dirs, "upload-tmp/tmpabc.upload.txt", b"a killed worker's", minutes_old=600
    )

    out, error = reconcile("--fix")

    assert error is None
    assert out.splitlines() == [
        f"Skipped ef/ef{'2' * 30}: not a regular file or folder (never followed)",
        "Skipped linked: not a regular file or folder (never followed)",
        "0 orphan file(s), 0 upload(s) missing their file.",
        "Fixed: 0 orphan file(s) removed, 0 upload(s) marked deleted.",
    ]
    assert precious.read_bytes() == b"keep me"
    assert link_to_file.is_symlink()
    assert link_to_folder.is_symlink()
    assert left.exists()
    assert on_disk(upload_dirs, upload).exists()


def test_only_the_storage_api_is_used(settings, upload_dirs, owner, default_policy):
    """An object store (here Django's in-memory storage): no paths, no os calls."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    }
    good = store(owner, default_policy, "good.txt", b"good")
    missing = store(owner, default_policy, "missing.txt", b"missing")
    services.storage().delete(missing.stored_name)
    services.storage().save("ab/ab" + "3" * 30, io.BytesIO(b"stray"))

    early = housekeeping.reconcile_storage(min_age=timedelta(minutes=60))
    assert (early.orphans, [m.id for m in early.missing], early.too_young) == ([], [missing.pk], 1)

    later = NOW() + timedelta(minutes=61)
    result = housekeeping.reconcile_storage(min_age=timedelta(minutes=60), fix=True, now=later)

    assert [o.name for o in result.orphans] == ["ab/ab" + "3" * 30]
    assert result.removed_orphans == ["ab/ab" + "3" * 30]
    assert [m.id for m in result.marked_deleted] == [missing.pk]
    assert result.in_step
    assert not services.storage().exists("ab/ab" + "3" * 30)
    assert services.storage().exists(good.stored_name)
    assert Upload.objects.get(pk=missing.pk).status == UploadStatus.DELETED


def test_fix_leaves_a_row_alone_that_was_deleted_meanwhile(
    owner, default_policy, upload_dirs, monkeypatch
):
    missing = store(owner, default_policy, "missing.txt", b"missing")
    os.remove(on_disk(upload_dirs, missing))
    real = housekeeping._mark_missing

    def owner_deletes_first(storage, row, result):
        services.upload_delete(upload=Upload.objects.get(pk=row.id))
        real(storage, row, result)

    monkeypatch.setattr(housekeeping, "_mark_missing", owner_deletes_first)

    result = housekeeping.reconcile_storage(min_age=timedelta(minutes=60), fix=True)

    assert result.left_alone == [f"upload {missing.pk}: deleted meanwhile"]
    assert result.marked_deleted == []
    assert result.in_step
    assert [e.code for e in removal_events()] == [services.DELETED]  # no second event
