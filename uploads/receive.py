"""Step 1 of the pipeline, receive: stream the request body into temporary files under the
policy's limits, hashing on the same pass.

`install_receiver()` must run before anything reads the body (Django's CSRF check and DRF's
session authentication both read `request.POST`): it puts the policy's handler in place, and
the parser that keeps each filename exactly as the client sent it, so the pipeline's name check
can refuse a traversal or a disguised name instead of Django quietly trimming it. Under DRF too,
the pipeline reads Django's `request.FILES`, so DRF's own parsers never see an upload.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.core.files.uploadedfile import TemporaryUploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import HttpRequest
from django.http.multipartparser import MultiPartParser
from django.utils.http import parse_header_parameters

from policies.models import UploadPolicy
from policies.units import format_bytes
from project.errors import UploadRejected
from uploads.rehearsal import rehearses

FILE_FIELD = "file"
CHUNK_BYTES = 256 * 1024


@dataclass
class ReceivedFile:
    """One file as it arrived: in a temporary file, with its size and SHA-256."""

    temp: TemporaryUploadedFile
    client_name: str  # as sent, HTML entities decoded; the name check decides what survives
    size: int
    sha256: str
    would_refuse: str = ""  # under a report-only policy: the cap it went past (uploads.rehearsal)


class RawNameMultiPartParser(MultiPartParser):
    """Django's parser, minus its filename trimming (path parts, unprintable characters)."""

    def sanitize_file_name(self, file_name: str) -> str | None:
        return html.unescape(file_name) or None


class ClosingBoundaryWatch:
    """Reads like the body, noting whether the multipart's closing boundary went past.

    A client that goes away between two parts just ends the body, and Django's parser takes
    what came so far as the whole form: without the closing boundary, nothing counts.
    """

    def __init__(self, body: Any, boundary: str) -> None:
        self._body = body
        self._marker = f"--{boundary}--".encode("latin-1", "replace")
        self._tail = b""
        self.bytes_read = 0
        self.closing_seen = False

    def read(self, size: int = -1) -> bytes:
        data = self._body.read(size)
        self.bytes_read += len(data)
        if not self.closing_seen:
            window = self._tail + data
            self.closing_seen = self._marker in window
            self._tail = window[-len(self._marker) :]
        return data


def _parse_keeping_raw_names(request: HttpRequest, meta: dict, post_data: Any):
    """Replaces HttpRequest.parse_file_upload for this request (see install_receiver)."""
    _, params = parse_header_parameters(meta.get("CONTENT_TYPE", ""))
    body = ClosingBoundaryWatch(post_data, params.get("boundary", ""))
    handlers = request.upload_handlers
    parsed = RawNameMultiPartParser(meta, body, handlers, request.encoding).parse()
    if body.bytes_read and not body.closing_seen:
        for handler in handlers:
            handler.upload_interrupted()
    return parsed


class PolicyUploadHandler(FileUploadHandler):
    """Enforces the policy's request, file-count and per-file caps while the body streams.

    A refusal is kept in `rejection` and stops the parse (the rest of the body, bounded by the
    request cap, is read and dropped so the client gets the answer); under a report-only policy
    the per-file caps are only noted on the file (the request cap still holds). Every temporary
    file it creates is closed (so deleted) by `discard()`.
    """

    chunk_size = CHUNK_BYTES

    def __init__(
        self, policy: UploadPolicy | None, gate: Callable[[], UploadRejected | None]
    ) -> None:
        """`gate()` is asked before the first byte is read: a refusal it returns (no such
        policy, not allowed to upload) is raised at once."""
        super().__init__()
        self.policy = policy
        self.gate = gate
        self.rejection: UploadRejected | None = None
        self.received: list[ReceivedFile] = []
        self._temps: list[TemporaryUploadedFile] = []
        self._current: TemporaryUploadedFile | None = None
        self._would_refuse = ""

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        """Refuse an oversized request from its Content-Length, before reading a byte."""
        if refusal := self.gate():
            raise refusal
        cap = self.policy.max_request_bytes
        if content_length > cap:
            raise UploadRejected(
                "request_too_large",
                f"The request is {format_bytes(content_length)}; this upload accepts requests "
                f"of at most {format_bytes(cap)}.",
            )

    def new_file(self, field_name, file_name, content_type, content_length, charset=None, *a):
        super().new_file(field_name, file_name, content_type, content_length, charset, *a)
        if field_name != FILE_FIELD:
            self._refuse("file_required", f'Send files in the form field "{FILE_FIELD}".')
        self._would_refuse = ""
        if len(self.received) >= self.policy.max_files_per_request:
            limit = self.policy.max_files_per_request
            self._refuse(
                "too_many_files",
                f"This upload accepts {limit} file{'s' if limit > 1 else ''} at a time.",
            )
        # Not the client's name: its extension would become part of the temporary file's name.
        self._current = TemporaryUploadedFile("upload", content_type, 0, charset)
        self._temps.append(self._current)
        self._hash = hashlib.sha256()
        self._size = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        self._size += len(raw_data)
        if self._size > self.policy.max_file_size_bytes and not self._would_refuse:
            self._refuse(
                "file_too_large",
                f"The file is larger than {self.policy.max_file_size_display}, "
                "the most this upload accepts.",
            )
        self._current.write(raw_data)
        self._hash.update(raw_data)
        return None

    def file_complete(self, file_size: int) -> TemporaryUploadedFile:
        temp, self._current = self._current, None
        temp.flush()
        temp.seek(0)
        temp.size = self._size
        self.received.append(
            ReceivedFile(
                temp, self.file_name, self._size, self._hash.hexdigest(), self._would_refuse
            )
        )
        return temp

    def upload_interrupted(self) -> None:
        """The body ended early (the client went away): nothing that arrived counts."""
        if self.rejection:  # refused first; the rest of the body was never wanted
            return
        self.rejection = UploadRejected(
            "bad_request", "The upload was interrupted before it finished."
        )
        self.received.clear()
        self.discard()

    def _refuse(self, code: str, detail: str) -> None:
        if rehearses(self.policy, code):
            self._would_refuse = code
            return
        self.rejection = UploadRejected(code, detail)
        self.discard()
        raise StopUpload(connection_reset=False)

    def discard(self) -> None:
        """Close, and so delete, every temporary file this handler made."""
        for temp in self._temps:
            temp.close()
        self._current = None


def install_receiver(request: HttpRequest, handler: PolicyUploadHandler) -> PolicyUploadHandler:
    """Make this request's body stream through `handler` (call before anything reads it)."""
    request.upload_handlers = [handler]
    request.parse_file_upload = partial(_parse_keeping_raw_names, request)
    return handler
