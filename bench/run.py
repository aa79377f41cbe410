"""`make bench`: each measurement beside its baseline, measured in the same run.

1. Header rules: requests/s for a trivial view through the project's middleware with the seeded
   rules, against the same stack without the header middleware (target >= 0.97), and against
   SecurityMiddleware + XFrameOptionsMiddleware + django-csp with static settings in place of both
   rule middlewares (target >= 1.0).
2. Audit log: changes/s for `policy_update` against a bare ORM save of the same change.
"""

from __future__ import annotations

import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
os.environ["DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3"

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import transaction  # noqa: E402
from django.test import RequestFactory, override_settings  # noqa: E402

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


HEADERS = "policies.middleware.RuleHeadersMiddleware"
RULE_CSP = "policies.middleware.RuleCSPMiddleware"
REQUESTS, ROUNDS_EACH = 4000, 8


def stacks() -> dict[str, list[str]]:
    """The project's stack; without its header middleware; with static headers and django-csp."""
    project = list(settings.MIDDLEWARE)
    without_headers = [m for m in project if m != HEADERS]
    static = [m if m != RULE_CSP else "csp.middleware.CSPMiddleware" for m in without_headers]
    fixed = [m if m != HEADERS else "bench.static_headers.FixedHeadersMiddleware" for m in project]
    return {
        "rules": project,
        "no header middleware": without_headers,
        "static django-csp": static,
        "same headers, fixed": fixed,
    }


def requests_per_second(middleware: list[str]) -> float:
    with override_settings(MIDDLEWARE=middleware, ROOT_URLCONF="bench.urls"):
        handler = WSGIHandler()
        environ = RequestFactory().get("/bench/", secure=True).environ
        start_response = lambda status, headers: None  # noqa: E731
        for _ in range(200):  # warm-up: rules compiled, caches filled
            handler(dict(environ), start_response)
        gc.collect()
        gc.disable()  # a collection landing in one stack's timing is noise, not its cost
        try:
            start = time.perf_counter()
            for _ in range(REQUESTS):
                handler(dict(environ), start_response)
            return REQUESTS / (time.perf_counter() - start)
        finally:
            gc.enable()


def header_bench() -> None:
    """Each round times every stack back to back; ratios are taken within a round (so a slow
    spell of the machine cancels out) and the median round is reported."""
    rounds = []
    for _ in range(ROUNDS_EACH):
        rounds.append({name: requests_per_second(mw) for name, mw in stacks().items()})
    for name in rounds[0]:
        print(f"{name:<34} {statistics.median(r[name] for r in rounds):9.0f} requests/s")

    def ratio(baseline: str) -> float:
        return statistics.median(r["rules"] / r[baseline] for r in rounds)

    print(
        f"{'ratio rules / no header middleware':<34} {ratio('no header middleware'):9.3f}"
        "  (target >= 0.97)"
    )
    print(
        f"{'ratio rules / static django-csp':<34} {ratio('static django-csp'):9.3f}"
        "  (target >= 1.0)"
    )
    print(
        f"{'ratio rules / same headers, fixed':<34} {ratio('same headers, fixed'):9.3f}"
        "  (what resolving the rules costs)"
    )


def main() -> None:
    call_command("migrate", verbosity=0)
    header_bench()
    baseline = rate("baseline: bare ORM save", bare_save)
    audited = rate("policy_update (audited, chained)", audited_update)
    print(f"{'ratio audited / baseline':<34} {audited / baseline:9.2f}")


if __name__ == "__main__":
    main()
