"""`make bench`: throughput of audited policy changes against an unaudited baseline, one run.

Prints changes/s for `policy_update` (validate, lock, version, HMAC-chained audit append) and for a
bare ORM save of the same change, and their ratio, so the audit log's cost is visible.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
os.environ["DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3"

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import transaction  # noqa: E402

from policies import services  # noqa: E402
from policies.models import UploadPolicy, service_writes  # noqa: E402

ROUNDS = 300


def rate(label: str, change) -> float:
    policy = UploadPolicy.objects.get(slug="default")
    start = time.perf_counter()
    for n in range(ROUNDS):
        policy = change(policy, n)
    per_second = ROUNDS / (time.perf_counter() - start)
    print(f"{label:<34} {per_second:9.0f} changes/s")
    return per_second


def bare_save(policy: UploadPolicy, n: int) -> UploadPolicy:
    with transaction.atomic(), service_writes():
        policy.title = f"bench {n}"
        policy.save()
    return policy


def audited_update(policy: UploadPolicy, n: int) -> UploadPolicy:
    return services.policy_update(
        policy=policy,
        changes={"title": f"audited {n}"},
        version=policy.version,
        actor=services.Actor.system(),
        reason="benchmark",
        rollback_note="none needed",
    )


def main() -> None:
    call_command("migrate", verbosity=0)
    baseline = rate("baseline: bare ORM save", bare_save)
    audited = rate("policy_update (audited, chained)", audited_update)
    print(f"{'ratio audited / baseline':<34} {audited / baseline:9.2f}")


if __name__ == "__main__":
    main()
