"""Create a local admin account for `make run` when none exists, and say how to log in."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Create a superuser 'admin' with a random password if no superuser exists (debug only)."

    def handle(self, *args, **options):
        if not settings.DEBUG:
            raise CommandError("ensure_local_admin is for local debug runs; use createsuperuser.")
        users = get_user_model().objects
        existing = users.filter(is_superuser=True).order_by("pk").first()
        if existing:
            self.stdout.write(
                f"Log in at http://127.0.0.1:8000/admin/ as {existing.get_username()!r} "
                f"(forgot it? python manage.py changepassword {existing.get_username()})."
            )
            return
        password = secrets.token_urlsafe(12)
        users.create_superuser("admin", "", password)
        self.stdout.write(
            "Created a local admin account. Log in at http://127.0.0.1:8000/admin/ with\n"
            f"  username: admin\n  password: {password}\n"
            "(shown once; change it with: python manage.py changepassword admin)"
        )
