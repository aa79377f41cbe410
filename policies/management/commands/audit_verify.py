"""Check the audit log: exit 0 with count and head hash, or 1 naming the first problem."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from policies import audit
from policies.integrity import state_drift


class Command(BaseCommand):
    help = (
        "Verify the audit log's hash chain and head, and that every policy and rule matches "
        "its latest audit entry."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--expect-head",
            metavar="HASH",
            help="Also fail unless the head hash equals this one (recorded earlier, elsewhere).",
        )

    def handle(self, *args, **options):
        result = audit.verify(expect_head=options["expect_head"])
        if not result.ok:
            raise CommandError(f"audit chain broken: {result.problem}", returncode=1)
        if drift := state_drift():
            raise CommandError(
                "policies and rules disagree with the audit log:\n  " + "\n  ".join(drift),
                returncode=1,
            )
        self.stdout.write(f"audit chain intact: {result.count} entries, head {result.head_hash}")
