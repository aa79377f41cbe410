"""Settings read from the environment: typed helpers, production requirements, deploy check."""

from __future__ import annotations

import importlib.util
import os
import secrets
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

from project.env import env_bool, env_int, env_list, env_rate

REPO_ROOT = Path(__file__).resolve().parents[2]
_OURS = ("DJANGO_", "AUDIT_HMAC", "DATABASE_URL", "UPLOAD_ROOT", "REDIS_URL", "TRUSTED_PROXY")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("true", True), (" Yes ", True), ("ON", True), ("0", False), ("off", False)],
)
def test_env_bool_reads_the_usual_spellings(monkeypatch, raw, expected):
    monkeypatch.setenv("PORTCULLIS_FLAG", raw)
    assert env_bool("PORTCULLIS_FLAG", not expected) is expected


@pytest.mark.parametrize("default", [True, False])
def test_env_bool_unset_or_blank_means_the_default(monkeypatch, default):
    monkeypatch.delenv("PORTCULLIS_FLAG", raising=False)
    assert env_bool("PORTCULLIS_FLAG", default) is default
    monkeypatch.setenv("PORTCULLIS_FLAG", " ")
    assert env_bool("PORTCULLIS_FLAG", default) is default


@pytest.mark.parametrize("raw", ["maybe", "2", "tru", "y e s"])
def test_env_bool_refuses_anything_else_naming_the_variable(monkeypatch, raw):
    monkeypatch.setenv("PORTCULLIS_FLAG", raw)
    with pytest.raises(ImproperlyConfigured, match="PORTCULLIS_FLAG"):
        env_bool("PORTCULLIS_FLAG")


def test_env_int_reads_whole_numbers_and_defaults_when_unset_or_blank(monkeypatch):
    monkeypatch.setenv("PORTCULLIS_N", " 42 ")
    assert env_int("PORTCULLIS_N", 7) == 42
    monkeypatch.setenv("PORTCULLIS_N", "")
    assert env_int("PORTCULLIS_N", 7) == 7
    monkeypatch.delenv("PORTCULLIS_N")
    assert env_int("PORTCULLIS_N", 7) == 7


@pytest.mark.parametrize("raw", ["ten", "1.5", "1e3", "0x10"])
def test_env_int_refuses_non_integers_naming_the_variable(monkeypatch, raw):
    monkeypatch.setenv("PORTCULLIS_N", raw)
    with pytest.raises(ImproperlyConfigured, match="PORTCULLIS_N"):
        env_int("PORTCULLIS_N", 7)


def test_env_int_enforces_its_minimum_naming_the_variable(monkeypatch):
    monkeypatch.setenv("PORTCULLIS_N", "0")
    with pytest.raises(ImproperlyConfigured, match="PORTCULLIS_N must be at least 1"):
        env_int("PORTCULLIS_N", 7, minimum=1)
    monkeypatch.setenv("PORTCULLIS_N", "1")
    assert env_int("PORTCULLIS_N", 7, minimum=1) == 1


@pytest.mark.parametrize(
    ("raw", "rate"),
    [("60/minute", "60/minute"), (" 5 / Hour ", "5/hour"), ("10/s", "10/s"), ("", "7/day")],
)
def test_env_rate_reads_a_count_per_period(monkeypatch, raw, rate):
    monkeypatch.setenv("PORTCULLIS_RATE", raw)
    assert env_rate("PORTCULLIS_RATE", "7/day") == rate


@pytest.mark.parametrize("raw", ["60 per minute", "60", "0/minute", "-1/day", "60/week", "x/m"])
def test_env_rate_refuses_what_would_break_every_upload(monkeypatch, raw):
    monkeypatch.setenv("PORTCULLIS_RATE", raw)
    with pytest.raises(ImproperlyConfigured, match="PORTCULLIS_RATE must be a count per"):
        env_rate("PORTCULLIS_RATE", "7/day")


def test_a_bad_throttle_rate_stops_the_app_at_start(tmp_path):
    env = {**_production_env(), "UPLOAD_THROTTLE_USER_RATE": "60 per minute"}
    result = _manage(tmp_path, "check", **env)
    assert result.returncode != 0
    assert "UPLOAD_THROTTLE_USER_RATE must be a count per" in result.stderr


def test_env_list_splits_on_commas_and_drops_blanks(monkeypatch):
    monkeypatch.setenv("PORTCULLIS_HOSTS", " example.com, ,www.example.com,")
    assert env_list("PORTCULLIS_HOSTS", ["default"]) == ["example.com", "www.example.com"]
    monkeypatch.setenv("PORTCULLIS_HOSTS", "")
    assert env_list("PORTCULLIS_HOSTS", ["default"]) == []
    monkeypatch.delenv("PORTCULLIS_HOSTS")
    assert env_list("PORTCULLIS_HOSTS", ["default"]) == ["default"]


def _load_settings(monkeypatch, tmp_path: Path, **env: str) -> ModuleType:
    """Execute project/settings.py afresh (under another name) with exactly this environment."""
    for name in list(os.environ):
        if name.startswith(_OURS):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite3'}")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location(
        "portcullis_settings_under_test", REPO_ROOT / "project" / "settings.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _production_env() -> dict[str, str]:
    return {
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "AUDIT_HMAC_KEY": secrets.token_urlsafe(48),
        "DJANGO_ALLOWED_HOSTS": "example.com",
    }


def test_production_is_the_default_and_is_strict(monkeypatch, tmp_path):
    env = {**_production_env(), "DJANGO_HSTS_PRELOAD": ""}
    del env["DJANGO_DEBUG"]
    loaded = _load_settings(monkeypatch, tmp_path, **env)
    assert loaded.DEBUG is False
    assert loaded.SECURE_SSL_REDIRECT is True
    assert loaded.SESSION_COOKIE_SECURE is True
    assert loaded.CSRF_COOKIE_SECURE is True
    assert loaded.SECURE_HSTS_SECONDS >= 31_536_000
    assert loaded.SECURE_HSTS_PRELOAD is True
    assert loaded.ALLOWED_HOSTS == ["example.com"]
    assert loaded.REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"] == [
        "rest_framework.renderers.JSONRenderer"
    ]
    assert not hasattr(loaded, "SECURE_PROXY_SSL_HEADER")


def test_behind_proxy_trusts_x_forwarded_proto(monkeypatch, tmp_path):
    loaded = _load_settings(
        monkeypatch, tmp_path, DJANGO_BEHIND_PROXY="1", TRUSTED_PROXY_COUNT="2", **_production_env()
    )
    assert loaded.BEHIND_PROXY is True
    assert loaded.TRUSTED_PROXY_COUNT == 2
    assert loaded.SECURE_PROXY_SSL_HEADER == ("HTTP_X_FORWARDED_PROTO", "https")


@pytest.mark.parametrize(
    ("name", "value"),
    [("TRUSTED_PROXY_COUNT", "0"), ("DJANGO_BEHIND_PROXY", "perhaps"), ("DJANGO_DEBUG", "nah")],
)
def test_a_bad_value_stops_the_settings_naming_it(monkeypatch, tmp_path, name, value):
    env = {**_production_env(), name: value}
    with pytest.raises(ImproperlyConfigured, match=name):
        _load_settings(monkeypatch, tmp_path, **env)


@pytest.mark.parametrize("hosts", [None, "", " , "])
def test_production_refuses_no_allowed_hosts(monkeypatch, tmp_path, hosts):
    env = _production_env()
    del env["DJANGO_ALLOWED_HOSTS"]
    if hosts is not None:
        env["DJANGO_ALLOWED_HOSTS"] = hosts
    with pytest.raises(ImproperlyConfigured, match="DJANGO_ALLOWED_HOSTS is required"):
        _load_settings(monkeypatch, tmp_path, **env)


def test_debug_runs_without_keys_and_derives_a_separate_audit_key(monkeypatch, tmp_path):
    loaded = _load_settings(monkeypatch, tmp_path, DJANGO_DEBUG="1")
    assert loaded.ALLOWED_HOSTS == ["localhost", "127.0.0.1", "[::1]"]
    assert loaded.SECRET_KEY
    assert len(loaded.AUDIT_HMAC_KEY) >= 32
    assert loaded.AUDIT_HMAC_KEY != loaded.SECRET_KEY
    assert loaded.SECURE_SSL_REDIRECT is False


def _manage(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(_OURS)}
    child_env.update(
        DJANGO_SETTINGS_MODULE="project.settings",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        UPLOAD_ROOT=str(tmp_path / "uploads"),
        **env,
    )
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("missing", ["DJANGO_SECRET_KEY", "AUDIT_HMAC_KEY", "DJANGO_ALLOWED_HOSTS"])
def test_production_refuses_to_start_without_a_required_variable(tmp_path, missing):
    env = _production_env()
    del env[missing]
    result = _manage(tmp_path, "check", **env)
    assert result.returncode != 0
    assert f"{missing} is required when DJANGO_DEBUG is off" in result.stderr


def test_production_passes_the_deploy_check(tmp_path):
    result = _manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", **_production_env())
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_the_test_settings_are_production_settings():
    assert django_settings.DEBUG is False
    assert django_settings.SESSION_COOKIE_SECURE is True
    assert django_settings.BEHIND_PROXY is False


def test_a_clamd_port_past_65535_stops_the_app_at_start(tmp_path):
    result = _manage(tmp_path, "check", **{**_production_env(), "CLAMD_PORT": "70000"})
    assert result.returncode != 0
    assert "CLAMD_PORT must be a TCP port" in result.stderr
