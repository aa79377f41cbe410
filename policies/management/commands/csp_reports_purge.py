"""Delete the CSP report rows no browser has sent for a while."""

from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from policies.reports import csp_reports_purge


def positive_days(value: object) -> int:
    """DAYS as given on the command line (a string) or to call_command (maybe an int)."""
    try:
        days = int(str(value).strip())
    except ValueError:
        days = 0
    if days < 1:
        raise CommandError(f"--older-than DAYS must be a positive whole number; got {value!r}.")
    return days


class Command(BaseCommand):
    help = "Delete the CSP report rows last seen more than DAYS days ago."

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            metavar="DAYS",
            required=True,
            help="delete rows whose latest report is older than this many days",
        )

    def handle(self, *args, **options):
        days = positive_days(options["older_than"])
        deleted = csp_reports_purge(older_than=timedelta(days=days))
        self.stdout.write(f"{deleted} CSP report row(s) deleted.")
