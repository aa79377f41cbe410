"""Raw multipart bodies for upload tests: any filename bytes (the test client would strip
path parts from a name), any number of parts, and request streams that count what is read."""

from __future__ import annotations

import io
from dataclasses import dataclass

BOUNDARY = "----portcullis-test-boundary"


@dataclass(frozen=True)
class Part:
    field: str
    content: bytes
    filename: str | None = None  # None: an ordinary form field
    content_type: str = "application/octet-stream"


def multipart(*parts: Part) -> tuple[bytes, str]:
    """The body and its Content-Type header."""
    body = io.BytesIO()
    for part in parts:
        body.write(f"--{BOUNDARY}\r\n".encode())
        disposition = f'form-data; name="{part.field}"'
        if part.filename is not None:
            disposition += f'; filename="{part.filename}"'
        body.write(f"Content-Disposition: {disposition}\r\n".encode())
        if part.filename is not None:
            body.write(f"Content-Type: {part.content_type}\r\n".encode())
        body.write(b"\r\n" + part.content + b"\r\n")
    body.write(f"--{BOUNDARY}--\r\n".encode())
    return body.getvalue(), f"multipart/form-data; boundary={BOUNDARY}"


def file_part(filename: str, content: bytes, content_type: str = "image/png") -> Part:
    """A file in the `file` field; the client's Content-Type is a lie the server must ignore."""
    return Part("file", content, filename, content_type)


class CountingStream(io.RawIOBase):
    """A request body that counts the bytes the server read, and can drop the connection."""

    def __init__(self, data: bytes, *, fail_after: int | None = None) -> None:
        self._data = io.BytesIO(data)
        self.bytes_read = 0
        self._fail_after = fail_after

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._fail_after is not None and self.bytes_read >= self._fail_after:
            raise OSError("client disconnected")
        chunk = self._data.read(size)
        self.bytes_read += len(chunk)
        return chunk

    def readline(self, size: int = -1) -> bytes:
        line = self._data.readline(size)
        self.bytes_read += len(line)
        return line
