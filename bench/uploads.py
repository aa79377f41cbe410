"""`make bench`, uploads: a 1 GiB file through the API against writing and hashing it locally.

The request body is generated while the server reads it (never held in memory), and goes
through the whole stack: middleware, token authentication, the streaming handler, sniffing,
storing, recording. The server's peak RSS is reset just before (Linux /proc/self/clear_refs),
so its growth during the upload is what the upload itself needed.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tempfile
import time
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.handlers.wsgi import WSGIHandler
from django.test import RequestFactory, override_settings
from rest_framework.authtoken.models import Token

from policies import services
from policies.models import GIB, MIB

SIZE = 1 * GIB
LINE = b"portcullis upload benchmark plain text the same line again and again\n"
BOUNDARY = b"----portcullis-bench"
CHUNK = MIB


def text_chunks(size: int):
    """`size` bytes of plain text, a MiB at a time."""
    block = (LINE * (CHUNK // len(LINE) + 1))[:CHUNK]
    for _ in range(size // CHUNK):
        yield block
    if size % CHUNK:
        yield block[: size % CHUNK]


class GeneratedBody(io.RawIOBase):
    """A multipart body around `size` bytes of text, produced as it is read."""

    def __init__(self, size: int) -> None:
        head = (
            b"--" + BOUNDARY + b"\r\n"
            b'Content-Disposition: form-data; name="file"; filename="big.txt"\r\n'
            b"Content-Type: text/plain\r\n\r\n"
        )
        tail = b"\r\n--" + BOUNDARY + b"--\r\n"
        self.length = len(head) + size + len(tail)
        self._parts = iter([head, *text_chunks(size), tail])
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            part = next(self._parts, None)
            if part is None:
                break
            self._buffer += part
        if size < 0:
            size = len(self._buffer)
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out


def reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def current_rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def local_write_and_hash(folder: Path) -> float:
    """The baseline: the same bytes written to disk and hashed, no HTTP, no checks."""
    start = time.perf_counter()
    digest = hashlib.sha256()
    with open(folder / "baseline.txt", "wb") as out:
        for chunk in text_chunks(SIZE):
            out.write(chunk)
            digest.update(chunk)
    elapsed = time.perf_counter() - start
    (folder / "baseline.txt").unlink()
    return elapsed


def large_upload_policy() -> None:
    services.policy_create(
        data={
            "slug": "bench-large",
            "max_file_size_bytes": 2 * GIB,
            "max_request_bytes": 2 * GIB + MIB,
            "allowed_types": ["text/plain"],
            "allowed_extensions": ["txt"],
            "scan": "off",
        },
        actor=services.Actor.system(),
        reason="benchmark",
        rollback_note="delete it",
    )


def api_upload(handler: WSGIHandler, token: str) -> tuple[float, str]:
    body = GeneratedBody(SIZE)
    environ = RequestFactory().post("/api/v1/uploads/?policy=bench-large").environ
    environ.update(
        {
            "wsgi.input": body,
            "CONTENT_LENGTH": str(body.length),
            "CONTENT_TYPE": f"multipart/form-data; boundary={BOUNDARY.decode()}",
            "HTTP_AUTHORIZATION": f"Token {token}",
        }
    )
    statuses = []
    start = time.perf_counter()
    handler(environ, lambda status, headers: statuses.append(status))
    return time.perf_counter() - start, statuses[0]


def upload_bench() -> None:
    folder = Path(tempfile.mkdtemp(prefix="portcullis-bench-"))
    (folder / "store").mkdir()
    (folder / "tmp").mkdir()
    storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(folder / "store")},
    }
    try:
        with override_settings(
            FILE_UPLOAD_TEMP_DIR=str(folder / "tmp"), STORAGES={"default": storage}
        ):
            large_upload_policy()
            user = get_user_model().objects.create_user("bench")
            token = Token.objects.create(user=user).key
            handler = WSGIHandler()
            baseline = local_write_and_hash(folder)
            before = current_rss_bytes()
            reset_peak_rss()
            upload, status = api_upload(handler, token)
            growth = peak_rss_bytes() - before
            # the disk's write-back state differs before and after: the local run's best counts
            baseline = min(baseline, local_write_and_hash(folder))
    finally:
        shutil.rmtree(folder)
    assert status.startswith("201"), status
    print(f"{'1 GiB local write + SHA-256':<34} {SIZE / baseline / MIB:9.0f} MiB/s")
    print(f"{'1 GiB upload through the API':<34} {SIZE / upload / MIB:9.0f} MiB/s")
    print(f"{'ratio upload / local':<34} {baseline / upload:9.2f}  (target >= 0.5)")
    print(f"{'server peak RSS growth':<34} {growth / MIB:9.1f} MiB (target <= 64 MiB)")
