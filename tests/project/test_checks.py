"""The project's system checks: each id fires when its setting is wrong, and not otherwise."""

from __future__ import annotations

import io
from pathlib import Path

from django.core.checks import run_checks
from django.core.management import call_command


def _ids() -> set[str]:
    return {message.id for message in run_checks()}


def test_check_is_clean_on_the_default_settings():
    out, err = io.StringIO(), io.StringIO()
    call_command("check", stdout=out, stderr=err)
    assert "System check identified no issues (0 silenced)." in out.getvalue()
    assert err.getvalue() == ""


def test_upload_root_inside_static_root_is_an_error(settings):
    settings.UPLOAD_ROOT = Path(settings.STATIC_ROOT) / "uploads"
    assert "uploads.E001" in _ids()


def test_static_root_inside_upload_root_is_an_error(settings, tmp_path):
    settings.UPLOAD_ROOT = tmp_path
    settings.STATIC_ROOT = tmp_path / "static"
    assert "uploads.E001" in _ids()


def test_upload_root_beside_static_root_is_fine(settings, tmp_path):
    settings.UPLOAD_ROOT = tmp_path / "uploads"
    settings.STATIC_ROOT = tmp_path / "static"
    assert "uploads.E001" not in _ids()


def test_the_upload_temp_folder_inside_static_root_is_an_error(settings):
    settings.FILE_UPLOAD_TEMP_DIR = str(Path(settings.STATIC_ROOT) / "tmp")
    messages = [m for m in run_checks() if m.id == "uploads.E001"]
    assert [m.msg.split(" (")[0] for m in messages] == ["FILE_UPLOAD_TEMP_DIR"]


def test_a_short_audit_key_is_an_error(settings):
    settings.AUDIT_HMAC_KEY = "k" * 31
    assert "policies.E001" in _ids()
    settings.AUDIT_HMAC_KEY = "k" * 32
    assert "policies.E001" not in _ids()


def test_an_audit_key_equal_to_the_secret_key_is_a_warning(settings):
    settings.AUDIT_HMAC_KEY = settings.SECRET_KEY
    messages = [m for m in run_checks() if m.id == "policies.W001"]
    assert len(messages) == 1
    assert messages[0].hint
