"""Print the headers a path gets and which rule set each (the admin preview, on a terminal)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from policies.headers import preview, request_path


class Command(BaseCommand):
    help = "Show the security headers a response on PATH gets, and which rule set each."

    def add_arguments(self, parser):
        parser.add_argument(
            "path", help="e.g. / or /admin/ (a query string or %%-encoding is read as a URL's)"
        )
        parser.add_argument("--host", default="", help="the request's host (rules may name one)")
        parser.add_argument("--http", action="store_true", help="preview a plain-HTTP request")
        parser.add_argument(
            "--authenticated",
            action="store_true",
            help="preview for a signed-in user on a page that reads who is signed in",
        )

    def handle(self, *args, **options):
        if not options["path"].startswith("/"):
            raise CommandError("Give a path that starts with /, e.g. /admin/.")
        rows = preview(
            request_path(options["path"]),  # what the middleware sees: request.path_info
            options["host"],
            secure=not options["http"],
            authenticated=options["authenticated"],
        )
        for row in rows:
            source = f"[{row.source}]" if row.source else ""
            note = f"  ({row.note})" if row.note else ""
            self.stdout.write(f"{row.header}: {row.value}  {source}{note}".rstrip())
