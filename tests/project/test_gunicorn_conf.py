"""gunicorn.conf.py: its values come from the environment, and gunicorn itself trusts no proxy."""

from __future__ import annotations

import multiprocessing
import runpy
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from gunicorn.config import Config
from gunicorn.http.message import Request
from gunicorn.http.unreader import IterUnreader

CONF = Path(__file__).resolve().parents[2] / "gunicorn.conf.py"
_OURS = ("GUNICORN_BIND", "WEB_CONCURRENCY", "GUNICORN_TIMEOUT")


def _load(monkeypatch, **env: str) -> dict[str, Any]:
    """Execute gunicorn.conf.py afresh with exactly these of its variables set."""
    for name in _OURS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(CONF))


def _gunicorn_config(namespace: dict[str, Any]) -> Config:
    """What gunicorn makes of the file: every name it knows, set through its validators."""
    cfg = Config()
    for name, value in namespace.items():
        if name in cfg.settings:
            cfg.set(name, value)
    return cfg


def test_the_defaults(monkeypatch):
    conf = _load(monkeypatch)
    assert conf["bind"] == "127.0.0.1:8000"
    assert conf["workers"] == multiprocessing.cpu_count() * 2 + 1
    assert conf["timeout"] == 60
    assert conf["wsgi_app"] == "project.wsgi:application"


def test_the_environment_sets_bind_workers_and_timeout(monkeypatch):
    conf = _load(
        monkeypatch, GUNICORN_BIND="0.0.0.0:9000", WEB_CONCURRENCY=" 3 ", GUNICORN_TIMEOUT="30"
    )
    cfg = _gunicorn_config(conf)
    assert cfg.bind == ["0.0.0.0:9000"]
    assert cfg.workers == 3
    assert cfg.timeout == 30


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WEB_CONCURRENCY", "0"),
        ("WEB_CONCURRENCY", "many"),
        ("GUNICORN_TIMEOUT", "0"),
        ("GUNICORN_TIMEOUT", "1.5"),
    ],
)
def test_a_bad_value_names_the_variable(monkeypatch, name, value):
    with pytest.raises(ImproperlyConfigured, match=name):
        _load(monkeypatch, **{name: value})


def test_gunicorn_trusts_no_forwarded_header(monkeypatch):
    conf = _load(monkeypatch)
    assert conf["forwarded_allow_ips"] == ""
    assert conf["secure_scheme_headers"] == {}
    cfg = _gunicorn_config(conf)
    assert cfg.forwarded_allow_ips == []
    assert cfg.secure_scheme_headers == {}
    assert cfg.forwarder_headers == []


@pytest.mark.parametrize(
    "peer",
    [("127.0.0.1", 40000), ""],  # a local proxy over TCP, and one over a UNIX socket
    ids=["tcp-localhost", "unix-socket"],
)
def test_a_forwarded_proto_does_not_make_gunicorns_request_https(monkeypatch, peer):
    """Only Django (with DJANGO_BEHIND_PROXY on) may turn X-Forwarded-Proto into HTTPS."""
    cfg = _gunicorn_config(_load(monkeypatch))
    raw = (
        b"GET / HTTP/1.1\r\nHost: example.com\r\n"
        b"X-Forwarded-Proto: https\r\nX-Forwarded-Ssl: on\r\nX-Forwarded-Protocol: ssl\r\n\r\n"
    )
    request = Request(cfg, IterUnreader([raw]), peer)
    assert request.scheme == "http"
    # Trusting the local proxy, as this file used to, gunicorn would have made the request https.
    trusting = Config()
    trusting.set("forwarded_allow_ips", "127.0.0.1")
    assert Request(trusting, IterUnreader([raw]), peer).scheme == "https"
