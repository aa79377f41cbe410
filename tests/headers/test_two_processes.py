"""A rule change made through one server process reaches another server process within 2 s.

Two `runserver` processes (A and B) share this test's database (the SQLite file on disk, or the
PostgreSQL test database) and its shared cache. Both are warmed, so each has the rule set cached;
an editor then changes the site-wide rule through A's admin change form, and B must send the new
header within 2 seconds, with nothing but the shared version stamp to tell it.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from django.db import connection
from django.test import Client

from policies.models import AuditEntry, HeaderRule
from tests.policies.test_admin import form_data, url

ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 20
PROPAGATION_SECONDS = 2.0


def _free_ports(count: int) -> list[int]:
    """Ports free right now, distinct (all held open until every one is picked)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def _database_url() -> str:
    """The URL of the database this test runs on, for the server processes."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    user = quote(db["USER"] or "", safe="")
    if db.get("PASSWORD"):
        user += ":" + quote(db["PASSWORD"], safe="")
    host = quote(db.get("HOST") or "127.0.0.1", safe="")  # a socket folder, percent-encoded
    return f"postgres://{user}@{host}:{db.get('PORT') or 5432}/{quote(db['NAME'], safe='')}"


def _request(
    port: int, method: str, path: str, *, body: str | None = None, headers: dict | None = None
) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    response.body = response.read()
    conn.close()
    return response


def _frame_options(port: int) -> str | None:
    return _request(port, "GET", "/accounts/login/").getheader("X-Frame-Options")


def _said(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:] if log.exists() else ""


@contextlib.contextmanager
def _servers(count: int, logs: Path) -> Iterator[list[int]]:
    """`count` server processes on this test's database, started together; killed at the end.
    What each writes goes to a file in `logs`, shown when it fails to start."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": _database_url(),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
    }
    ports = _free_ports(count)
    processes: list[subprocess.Popen] = []
    stack = contextlib.ExitStack()  # the log files, closed last
    try:
        for port in ports:
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "manage.py",
                        "runserver",
                        "--noreload",
                        "--skip-checks",
                        f"127.0.0.1:{port}",
                    ],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=stack.enter_context((logs / f"server-{port}.log").open("w")),
                )
            )
        deadline = time.monotonic() + STARTUP_SECONDS
        for port, process in zip(ports, processes, strict=True):
            while True:
                try:
                    _frame_options(port)
                    break
                except OSError:
                    log = logs / f"server-{port}.log"
                    if process.poll() is not None:
                        pytest.fail(f"the server on port {port} exited:\n{_said(log)}")
                    if time.monotonic() > deadline:
                        pytest.fail(f"the server on port {port} did not start:\n{_said(log)}")
                    time.sleep(0.1)
        yield ports
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        stack.close()


def _cookies(response: http.client.HTTPResponse) -> dict[str, str]:
    found = {}
    for header in response.headers.get_all("Set-Cookie") or []:
        name, _, rest = header.partition("=")
        found[name.strip()] = rest.split(";", 1)[0]
    return found


def _change_rule_through(port: int, editor, rule: HeaderRule, changes: dict[str, str]) -> None:
    """As an editor in a browser would: open the rule's change form on this server, post it."""
    client = Client()
    client.force_login(editor)  # the session lives in the shared database
    session = client.cookies["sessionid"].value
    change_url = url("headerrule", "change", rule.pk)
    page = _request(port, "GET", change_url, headers={"Cookie": f"sessionid={session}"})
    assert page.status == HTTPStatus.OK, page.status
    csrf_cookie = _cookies(page)["csrftoken"]
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.body).group(1)
    data = {
        **form_data(client, change_url),  # the form as rendered, untouched
        **changes,
        "reason": "Allow framing by our own pages",
        "rollback_note": "Set it back to DENY",
        "csrfmiddlewaretoken": token.decode(),
    }
    saved = _request(
        port,
        "POST",
        change_url,
        body=urlencode(data, doseq=True),
        headers={
            "Cookie": f"sessionid={session}; csrftoken={csrf_cookie}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert saved.status == HTTPStatus.FOUND, saved.body[:2000]  # saved: back to the list


@pytest.mark.django_db(transaction=True)
def test_a_rule_change_through_one_process_reaches_another_within_two_seconds(editor, tmp_path):
    rule = HeaderRule.objects.get(name="site-wide")
    with _servers(2, tmp_path) as (process_a, process_b):
        # Warm both: each loads and caches the rule set it serves.
        assert _frame_options(process_a) == "DENY"
        assert _frame_options(process_b) == "DENY"

        _change_rule_through(process_a, editor, rule, {"x_frame_options": "SAMEORIGIN"})
        changed_at = time.monotonic()

        seen = _frame_options(process_b)
        while seen != "SAMEORIGIN":
            waited = time.monotonic() - changed_at
            assert waited < PROPAGATION_SECONDS, f"B still sends {seen} after {waited:.2f}s"
            time.sleep(0.05)
            seen = _frame_options(process_b)
        assert _frame_options(process_a) == "SAMEORIGIN"

    entry = AuditEntry.objects.filter(object_type="header_rule", object_repr="site-wide").latest(
        "seq"
    )
    assert entry.actor == "user:editor"  # made by A's admin, not by this process as system
    assert entry.reason == "Allow framing by our own pages"
    assert entry.diff["x_frame_options"] == {"before": "DENY", "after": "SAMEORIGIN"}
