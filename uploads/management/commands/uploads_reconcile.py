"""Compare stored files with upload rows; exit code 1 when they are out of step (for monitoring)."""

from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from policies.units import format_bytes
from uploads.housekeeping import reconcile_storage

DEFAULT_MINUTES = 60


def positive_minutes(value: object) -> int:
    """MINUTES as given on the command line (a string) or to call_command (maybe an int)."""
    try:
        minutes = int(str(value).strip())
    except ValueError:
        minutes = 0
    if minutes < 1:
        raise CommandError(f"--min-age-minutes N must be a positive whole number; got {value!r}.")
    return minutes


def format_age(age: timedelta) -> str:
    minutes = int(age.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h"
    return f"{minutes // (24 * 60)} days"


class Command(BaseCommand):
    help = (
        "List files in the upload storage that no stored upload names (orphans, once older "
        "than N minutes) and stored uploads whose file is gone (missing). Exit code 1 when "
        "there are any, unless --fix: it deletes the orphans and marks the uploads deleted, "
        "each with a 'file_missing' event."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--fix", action="store_true", help="delete orphans, mark missing-file uploads deleted"
        )
        parser.add_argument(
            "--min-age-minutes",
            metavar="N",
            default=DEFAULT_MINUTES,
            help="files younger than this are never orphans: uploads in flight store their "
            f"file before their row commits (default {DEFAULT_MINUTES})",
        )

    def handle(self, *args, **options):
        minutes = positive_minutes(options["min_age_minutes"])
        result = reconcile_storage(min_age=timedelta(minutes=minutes), fix=options["fix"])
        for orphan in result.orphans:
            self.stdout.write(
                f"Orphan file {orphan.name}: {format_bytes(orphan.size)}, "
                f"{format_age(orphan.age)} old"
            )
        for row in result.missing:
            self.stdout.write(
                f"Missing file of upload {row.id} (owner {row.owner}, {row.original_name!r}, "
                f"policy {row.policy_slug}): {row.stored_name}"
            )
        for name in result.skipped:
            self.stdout.write(f"Skipped {name}: not a regular file or folder (never followed)")
        if result.too_young:
            self.stdout.write(
                f"{result.too_young} unnamed file(s) younger than {minutes} minute(s) left "
                "alone: uploads in flight."
            )
        self.stdout.write(
            f"{len(result.orphans)} orphan file(s), "
            f"{len(result.missing)} upload(s) missing their file."
        )
        if not result.fixed:
            if not result.in_step:
                raise CommandError(
                    "Storage and uploads are out of step; `uploads_reconcile --fix` sets them "
                    "right.",
                    returncode=1,
                )
            return
        for name in result.removed_orphans:
            self.stdout.write(f"Removed orphan file {name}")
        for row in result.marked_deleted:
            self.stdout.write(f"Marked upload {row.id} deleted: its file is missing")
        for note in result.left_alone:
            self.stdout.write(f"Left alone, set right meanwhile: {note}")
        self.stdout.write(
            f"Fixed: {len(result.removed_orphans)} orphan file(s) removed, "
            f"{len(result.marked_deleted)} upload(s) marked deleted."
        )
        if not result.in_step:
            raise CommandError(
                f"Could not fix {len(result.failures)} item(s): " + "; ".join(result.failures),
                returncode=1,
            )
