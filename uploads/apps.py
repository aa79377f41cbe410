from __future__ import annotations

from django.apps import AppConfig


class UploadsConfig(AppConfig):
    name = "uploads"
    verbose_name = "Uploads"

    def ready(self) -> None:
        import contextlib
        from pathlib import Path

        from django.conf import settings

        from uploads import checks  # noqa: F401  (registers the system checks)

        # Uploads stream here; private to this user (Django's own check wants it to exist).
        # If it cannot be made, Django's files.E001 check names the folder; commands still run.
        with contextlib.suppress(OSError):
            Path(settings.FILE_UPLOAD_TEMP_DIR).mkdir(mode=0o700, parents=True, exist_ok=True)
