"""`make bench`: each measurement beside its baseline, measured in the same run.

1. Header rules: requests/s for a trivial view through the project's middleware with the seeded
   rules, against the same stack without the project's header middleware (target >= 0.97: both
   rule middlewares removed, Django's SecurityMiddleware and XFrameOptionsMiddleware kept), against
   SecurityMiddleware + XFrameOptionsMiddleware + django-csp with static settings in place of both
   rule middlewares (target >= 1.0). A fourth stack sends the same headers from a fixed dict, so
   the output shows what resolving the rules costs apart from writing the headers.
2. Audit log: changes/s for `policy_update` against a bare ORM save of the same change.
3. Uploads: a 1 GiB upload through the API against writing + SHA-256 of the same bytes locally
   (target >= 0.5), and the server's peak memory growth during it (target <= 64 MiB).
"""

from __future__ import annotations

import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import django

if __name__ == "__main__":  # imported by a test, it leaves the environment and Django alone
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    os.environ["DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3"
    django.setup()

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.core.management import call_command
from django.db import transaction
from django.test import RequestFactory, override_settings

from policies import services
from policies.models import UploadPolicy, service_writes

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
BATCH, BATCHES = 200, 300  # requests per timed batch; batches per stack


def stacks(project: list[str] | None = None) -> dict[str, list[str]]:
    """The project's stack; without its header middleware; with static headers and django-csp.

    "No header middleware" is the issue's baseline: the same stack with both rule middlewares
    removed (each resolves the rules); Django's SecurityMiddleware and XFrameOptionsMiddleware stay,
    as a project without the rules would still have them.
    """
    project = list(settings.MIDDLEWARE if project is None else project)
    without_headers = [m for m in project if m not in (HEADERS, RULE_CSP)]
    static = [m for m in project if m != HEADERS]
    static[static.index(RULE_CSP)] = "csp.middleware.CSPMiddleware"
    fixed = [m if m != HEADERS else "bench.static_headers.FixedHeadersMiddleware" for m in project]
    return {
        "rules": project,
        "no header middleware": without_headers,
        "static django-csp": static,
        "same headers, fixed": fixed,
    }


def warmed_handler(middleware: list[str], environ: dict) -> WSGIHandler:
    with override_settings(MIDDLEWARE=middleware):  # read once, when the handler is built
        handler = WSGIHandler()
    for _ in range(300):  # rules compiled, caches filled
        handler(dict(environ), lambda status, headers: None)
    return handler


def seconds_per_request(handler: WSGIHandler, environ: dict) -> float:
    start_response = lambda status, headers: None  # noqa: E731
    start = time.perf_counter()
    for _ in range(BATCH):
        handler(dict(environ), start_response)
    return (time.perf_counter() - start) / BATCH


def header_bench() -> None:
    """Short batches of every stack, interleaved (order reversed every other round), so each
    stack sees the same machine. A shared machine only ever slows a batch down, by far more than
    the differences measured here, so each stack's cost is its best batch, as timeit advises;
    the median of the ratios within a round is printed beside it as a cross-check."""
    environ = RequestFactory().get("/bench/", secure=True).environ
    with override_settings(ROOT_URLCONF="bench.urls"):
        handlers = {name: warmed_handler(mw, environ) for name, mw in stacks().items()}
        times: dict[str, list[float]] = {name: [] for name in handlers}
        gc.collect()
        gc.disable()  # a collection landing in one stack's batch is noise, not its cost
        try:
            for round_number in range(BATCHES):
                order = list(handlers) if round_number % 2 else list(reversed(handlers))
                for name in order:
                    times[name].append(seconds_per_request(handlers[name], environ))
        finally:
            gc.enable()
    best = {name: min(samples) for name, samples in times.items()}
    for name, seconds in best.items():
        print(f"{name:<34} {1 / seconds:9.0f} requests/s (best batch)")
    slowdown = statistics.median(times["rules"]) / best["rules"]
    print(f"{'machine noise':<34} {slowdown:9.2f}x  (median batch / best batch)")
    for baseline, target in (
        ("no header middleware", "target >= 0.97"),
        ("static django-csp", "target >= 1.0"),
        ("same headers, fixed", "what resolving the rules costs"),
    ):
        paired = statistics.median(
            b / r for r, b in zip(times["rules"], times[baseline], strict=True)
        )
        print(
            f"{'ratio rules / ' + baseline:<34} {best[baseline] / best['rules']:9.3f}"
            f"  (paired median {paired:.3f}; {target})"
        )


def main() -> None:
    call_command("migrate", verbosity=0)
    header_bench()
    baseline = rate("baseline: bare ORM save", bare_save)
    audited = rate("policy_update (audited, chained)", audited_update)
    print(f"{'ratio audited / baseline':<34} {audited / baseline:9.2f}")
    from bench.uploads import upload_bench  # after django.setup()

    upload_bench()


if __name__ == "__main__":
    main()
