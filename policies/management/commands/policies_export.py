"""Write every upload policy and header rule as stable, sorted JSON (policies.exchange)."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand

from policies.exchange import export_json


class Command(BaseCommand):
    help = "Write all upload policies and header rules as sorted JSON, keyed by slug and name."

    def add_arguments(self, parser):
        parser.add_argument("--output", help="a file to write (default: standard output)")

    def handle(self, *args, **options):
        text = export_json()
        if options["output"]:
            Path(options["output"]).write_text(text, encoding="utf-8")
            self.stderr.write(f"Wrote {options['output']}.")
        else:
            self.stdout.write(text, ending="")
