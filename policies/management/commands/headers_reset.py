"""Restore the seeded header rules and disable the others: the way back from a bad CSP."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from policies.services import Actor, headers_reset


class Command(BaseCommand):
    help = "Restore the seeded header rules and disable every other rule (audited)."

    def add_arguments(self, parser):
        parser.add_argument("--reason", required=True, help="why, for the audit log")

    def handle(self, *args, **options):
        if not options["reason"].strip():
            raise CommandError("--reason must say why the rules are being reset.")
        entries = headers_reset(actor=Actor.system(), reason=options["reason"])
        for entry in entries:
            self.stdout.write(f"#{entry.seq} {entry.action} {entry.object_repr}")
        self.stdout.write(f"{len(entries)} change(s); the seeded rules are in force.")
