"""A rule change made in one process reaches another server process within 2 seconds."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.db import connection

from policies import services
from policies.models import HeaderRule

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _database_url() -> str:
    """The URL of the database this test runs on, for the other process."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    host, port = db.get("HOST") or "127.0.0.1", db.get("PORT") or 5432
    return f"postgres://{db['USER']}@{host}:{port}/{db['NAME']}"


def _frame_options(port: int) -> str | None:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=5) as r:
        return r.headers.get("X-Frame-Options")


@pytest.fixture
def other_server():
    port = _free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": _database_url(),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
    }
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                _frame_options(port)
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.django_db(transaction=True)
def test_a_rule_change_reaches_another_process_within_two_seconds(other_server, editor):
    assert _frame_options(other_server) == "DENY"
    rule = HeaderRule.objects.get(name="site-wide")
    services.rule_update(
        rule=rule,
        changes={"x_frame_options": "SAMEORIGIN"},
        version=rule.version,
        actor=services.Actor.for_user(editor),
        reason="Allow framing by ourselves",
        rollback_note="Set it back to DENY",
    )
    changed_at = time.monotonic()
    while _frame_options(other_server) != "SAMEORIGIN":
        assert time.monotonic() - changed_at < 2.0, "the other process still sends DENY"
        time.sleep(0.05)
