"""Housekeeping of the upload folders: temporary files a killed worker left behind.

A worker killed mid-upload (gunicorn's SIGKILL after GUNICORN_TIMEOUT, the OOM killer) never runs
the pipeline's clean-up, so its temporary file stays in FILE_UPLOAD_TEMP_DIR.
`purge_stale_temp_files()` removes such files once they are old enough that no live upload can
still be writing them.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings


@dataclass(frozen=True)
class PurgeResult:
    removed: int
    removed_bytes: int


def purge_stale_temp_files(*, older_than: timedelta, now: float | None = None) -> PurgeResult:
    """Delete the regular files directly in FILE_UPLOAD_TEMP_DIR last modified before
    `older_than` ago. Symbolic links, folders and whatever is inside folders are left alone; every
    look-up and removal goes through the folder's descriptor, so nothing outside it is touched
    even if a link or a rename appears meanwhile."""
    cutoff = (time.time() if now is None else now) - older_than.total_seconds()
    removed = removed_bytes = 0
    flags = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_NOFOLLOW", 0)
    folder = os.open(settings.FILE_UPLOAD_TEMP_DIR, flags)
    try:
        with os.scandir(folder) as entries:
            names = [entry.name for entry in entries]
        for name in names:
            try:
                info = os.stat(name, dir_fd=folder, follow_symlinks=False)
                if not stat.S_ISREG(info.st_mode) or info.st_mtime >= cutoff:
                    continue
                os.unlink(name, dir_fd=folder)  # unlink never follows a link
            except FileNotFoundError:  # its upload finished and cleaned up meanwhile
                continue
            removed += 1
            removed_bytes += info.st_size
    finally:
        os.close(folder)
    return PurgeResult(removed=removed, removed_bytes=removed_bytes)
