from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class PoliciesConfig(AppConfig):
    name = "policies"
    verbose_name = "Policies"

    def ready(self) -> None:
        from policies import checks  # noqa: F401  (registers the system checks)
        from policies.seed import seed_defaults

        post_migrate.connect(seed_defaults, sender=self, dispatch_uid="policies.seed_defaults")
