"""Apply a policies_export file: print the difference, then make it through the services."""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from policies.exchange import ImportRefused, apply, parse_document, plan
from policies.services import Actor


class Command(BaseCommand):
    help = (
        "Make the upload policies and header rules what FILE (from policies_export) says: "
        "each change one `import` audit entry, all or nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--reason", required=True, help="why (in the audit log)")
        parser.add_argument("--rollback-note", required=True, help="how to undo it")
        parser.add_argument(
            "--dry-run", action="store_true", help="print and check the changes, make none"
        )
        parser.add_argument(
            "--actor",
            metavar="USERNAME",
            help='who is importing, as the audit log names them (default: "system")',
        )

    def handle(self, *args, **options):
        try:
            text = Path(options["file"]).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"{options['file']}: {exc}") from None
        actor = self._actor(options["actor"])
        try:
            changes = plan(parse_document(text))
            for change in changes:
                self.stdout.write(change.describe())
            if not changes:
                self.stdout.write("Nothing to change.")
                return
            apply(
                changes,
                actor=actor,
                reason=options["reason"],
                rollback_note=options["rollback_note"],
                dry_run=options["dry_run"],
            )
            if options["dry_run"]:
                self.stdout.write(f"Dry run: {len(changes)} change(s) checked, none made.")
                return
        except ImportRefused as refused:
            raise CommandError(f"{options['file']}: {refused}; nothing was changed.") from None
        self.stdout.write(f"Imported: {len(changes)} change(s), each an audit entry.")

    @staticmethod
    def _actor(username: str | None) -> Actor:
        if username is None:
            return Actor.system()
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"--actor {username}: no active user by that name")
        return Actor.for_user(user)
