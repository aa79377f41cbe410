"""Delete temporary upload files that killed workers left behind (run it hourly from cron)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from policies.units import format_bytes
from uploads.housekeeping import purge_stale_temp_files

DEFAULT_MINUTES = 60


def positive_minutes(value: object) -> int:
    """MINUTES as given on the command line (a string) or to call_command (maybe an int)."""
    try:
        minutes = int(str(value).strip())
    except ValueError:
        minutes = 0
    if minutes < 1:
        raise CommandError(f"--older-than MINUTES must be a positive whole number; got {value!r}.")
    return minutes


class Command(BaseCommand):
    help = (
        "Delete regular files in FILE_UPLOAD_TEMP_DIR (UPLOAD_TEMP_DIR) last modified more than "
        "MINUTES minutes ago: temporary files of uploads whose worker was killed. Keep MINUTES "
        "well above GUNICORN_TIMEOUT so no live upload loses its file."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            metavar="MINUTES",
            default=DEFAULT_MINUTES,
            help=f"delete files older than this many minutes (default {DEFAULT_MINUTES})",
        )

    def handle(self, *args, **options):
        minutes = positive_minutes(options["older_than"])
        try:
            result = purge_stale_temp_files(older_than=timedelta(minutes=minutes))
        except OSError as error:
            raise CommandError(
                f"Cannot clean {settings.FILE_UPLOAD_TEMP_DIR}: {error.strerror or error}."
            ) from error
        self.stdout.write(
            f"{result.removed} temporary upload file(s) older than {minutes} minute(s) removed, "
            f"{format_bytes(result.removed_bytes)} in total."
        )
