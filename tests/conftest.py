"""Shared fixtures: the users of hc/test.py style (an owner, another user, a staff editor)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, Permission

from policies.models import UploadPolicy
from policies.services import Actor
from tests.clamd_server import clamd_server, clamd_socket  # noqa: F401
from uploads.models import Upload

PASSWORD = "correct horse battery staple"


@pytest.fixture
def owner(django_user_model):
    return django_user_model.objects.create_user("owner", "owner@example.com", PASSWORD)


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user("other", "other@example.com", PASSWORD)


@pytest.fixture
def editor(django_user_model):
    """Staff, in a "policy editors" group holding the policies models' permissions; no superuser."""
    group, _ = Group.objects.get_or_create(name="policy editors")
    group.permissions.set(Permission.objects.filter(content_type__app_label="policies"))
    user = django_user_model.objects.create_user(
        "editor", "editor@example.com", PASSWORD, is_staff=True
    )
    user.groups.add(group)
    return user


@pytest.fixture
def actor(editor):
    return Actor.for_user(editor)


@pytest.fixture
def default_policy(db):
    return UploadPolicy.objects.get(slug="default")


@dataclass
class UploadDirs:
    store: Path
    temp: Path

    def stored_files(self) -> list[Path]:
        return [p for p in self.store.rglob("*") if p.is_file()]

    def temp_files(self) -> list[Path]:
        return [p for p in self.temp.rglob("*") if p.is_file()]

    def assert_nothing_kept(self) -> None:
        """A refused or failed upload leaves no file, no temporary file and no Upload row."""
        assert self.stored_files() == []
        assert self.temp_files() == []
        assert not Upload.objects.exists()


@pytest.fixture
def upload_dirs(settings, tmp_path) -> UploadDirs:
    dirs = UploadDirs(store=tmp_path / "store", temp=tmp_path / "tmp")
    dirs.store.mkdir()
    dirs.temp.mkdir()
    settings.FILE_UPLOAD_TEMP_DIR = str(dirs.temp)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            **settings.STORAGES["default"],
            "OPTIONS": {**settings.STORAGES["default"]["OPTIONS"], "location": str(dirs.store)},
        },
    }
    return dirs


def _hypothesis_profiles() -> None:
    """Derandomized in CI, so a rare example cannot block a landing."""
    import os

    from hypothesis import settings as hypothesis_settings

    hypothesis_settings.register_profile("ci", derandomize=True, deadline=None)
    hypothesis_settings.register_profile("dev", deadline=None)
    default = "ci" if os.environ.get("CI") == "true" else "dev"
    hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", default))


_hypothesis_profiles()
