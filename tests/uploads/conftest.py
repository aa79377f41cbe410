"""Upload fixtures: storage and temporary folders per test, so "nothing kept" is checkable."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from uploads.models import Upload, UploadEvent


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


@pytest.fixture
def signed_in(client, owner, upload_dirs):
    """The owner's browser session (the test client skips CSRF checks unless asked)."""
    client.force_login(owner)
    return client


def only_event() -> UploadEvent:
    events = list(UploadEvent.objects.all())
    assert len(events) == 1, [e.code for e in events]
    return events[0]
