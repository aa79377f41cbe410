"""`manage.py upload_temp_purge`: temporary files a killed worker left behind are removed once
old; fresh ones, links and folders stay, and nothing outside the folder is touched."""

from __future__ import annotations

import io
import os
import time

import pytest
from django.core.management import CommandError, call_command

MINUTE = 60


def aged(path, minutes: float):
    then = time.time() - minutes * MINUTE
    os.utime(path, (then, then), follow_symlinks=False)
    return path


def left_behind(path, content: bytes, minutes: float):
    """A temporary file as a killed worker leaves it: written, then untouched for a while."""
    path.write_bytes(content)
    return aged(path, minutes)


def purge(*args: str) -> str:
    out = io.StringIO()
    call_command("upload_temp_purge", *args, stdout=out)
    return out.getvalue().strip()


def test_old_files_go_and_fresh_ones_stay(upload_dirs):
    left_behind(upload_dirs.temp / "tmpa1b2.upload.pdf", b"x" * 1024, 61)
    left_behind(upload_dirs.temp / "tmpc3d4.upload.png", b"y" * 2048, 60 * 24)
    fresh = left_behind(upload_dirs.temp / "tmpe5f6.upload.txt", b"still uploading", 59)

    assert purge() == (
        "2 temporary upload file(s) older than 60 minute(s) removed, 3 KiB in total."
    )
    assert upload_dirs.temp_files() == [fresh]


def test_older_than_is_in_minutes(upload_dirs):
    file = left_behind(upload_dirs.temp / "tmp.upload.txt", b"abc", 10)
    assert purge("--older-than", "15") == (
        "0 temporary upload file(s) older than 15 minute(s) removed, 0 bytes in total."
    )
    assert file.exists()
    assert purge("--older-than", "5") == (
        "1 temporary upload file(s) older than 5 minute(s) removed, 3 bytes in total."
    )
    assert not file.exists()


def test_links_and_folders_are_left_alone(upload_dirs, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    target = left_behind(outside / "precious.txt", b"keep me", 600)
    link_to_file = upload_dirs.temp / "link.upload"
    link_to_file.symlink_to(target)
    aged(link_to_file, 600)
    link_to_folder = upload_dirs.temp / "linked-folder"
    link_to_folder.symlink_to(outside, target_is_directory=True)
    aged(link_to_folder, 600)
    folder = upload_dirs.temp / "sub"
    folder.mkdir()
    nested = left_behind(folder / "nested.upload", b"not ours to judge", 600)
    aged(folder, 600)

    assert purge().startswith("0 temporary upload file(s)")
    assert target.read_bytes() == b"keep me"
    assert link_to_file.is_symlink()
    assert link_to_folder.is_symlink()
    assert nested.exists()


@pytest.mark.parametrize("minutes", ["0", "-5", "soon"])
def test_older_than_must_be_a_positive_number_of_minutes(upload_dirs, minutes):
    with pytest.raises(CommandError, match="--older-than MINUTES must be a positive whole number"):
        purge("--older-than", minutes)


def test_a_missing_folder_is_a_clear_error(settings, tmp_path):
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "nope")
    with pytest.raises(CommandError, match=r"Cannot clean .*nope"):
        purge()
