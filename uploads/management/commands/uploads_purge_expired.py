"""Delete uploads past their policy's retention (run it daily from cron)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from policies.units import format_bytes
from uploads.housekeeping import ExpiryResult, purge_expired_uploads


class Command(BaseCommand):
    help = (
        "Delete the uploads created longer ago than their policy's retention_days (policies "
        "without one keep files forever): the file, the row, and one 'expired' event each. Rows "
        "of uploads their owner already deleted go too, without a second event."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help="list what would be deleted; change nothing"
        )

    def handle(self, *args, **options):
        result = purge_expired_uploads(dry_run=options["dry_run"])
        if not result.policies:
            self.stdout.write("No policy has a retention period: nothing expires.")
            return
        for upload in result.uploads:
            what = "clear the row of deleted upload" if upload.already_deleted else "expire upload"
            self.stdout.write(
                f"Would {what} {upload.id} ({upload.policy_slug}, {upload.original_name!r}, "
                f"{format_bytes(upload.size_bytes)}, created {upload.created_at:%Y-%m-%d %H:%M})"
            )
        for policy in result.policies:
            self.stdout.write(
                f"{policy.slug} ({policy.retention_days} day(s)): "
                + _counts(result, policy.expired, policy.expired_bytes, policy.cleared)
            )
        self.stdout.write(
            "Total: " + _counts(result, result.expired, result.expired_bytes, result.cleared)
        )
        if result.undeleted_files:
            self.stderr.write(
                f"Could not remove {len(result.undeleted_files)} file(s) whose uploads expired "
                "(see the log; `uploads_reconcile --fix` removes them later): "
                + ", ".join(result.undeleted_files)
            )


def _counts(result: ExpiryResult, expired: int, expired_bytes: int, cleared: int) -> str:
    expire, clear = (
        ("would expire", "would be cleared") if result.dry_run else ("expired", "cleared")
    )
    return (
        f"{expired} upload(s) {expire} ({format_bytes(expired_bytes)}), "
        f"{cleared} row(s) of deleted uploads {clear}."
    )
