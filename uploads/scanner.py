"""Malware scanning with clamd, over its INSTREAM command.

We speak the protocol ourselves over `socket` (a dozen lines; the PyPI `clamd` client is
unmaintained): `zINSTREAM\\0`, the file in chunks each prefixed with its 4-byte big-endian length,
a zero-length chunk, then one NUL-terminated reply: `stream: OK`, `stream: <name> FOUND`, or
`<reason> ERROR`. The socket is CLAMD_SOCKET (unix) when set, else CLAMD_HOST:CLAMD_PORT (TCP).

Two errors, both meaning "not scanned": ScanTooLarge when the file is over CLAMD_STREAM_MAX_BYTES
(never sent) or over clamd's own StreamMaxLength (clamd answers "INSTREAM size limit exceeded" and
hangs up mid-stream, so a broken pipe while sending is followed by reading that answer);
ScannerUnavailable for anything else: no connection, a timeout, an ERROR answer, or an answer
that is not clamd's.
"""

from __future__ import annotations

import io
import logging
import socket
import struct
import time
from dataclasses import dataclass
from typing import IO

from django.conf import settings

logger = logging.getLogger("portcullis.uploads")

CHUNK_BYTES = 64 * 1024
REPLY_MAX_BYTES = 4096  # clamd's answers are one short line; a longer one is not clamd
_SIZE_LIMIT_REPLY = "INSTREAM size limit exceeded"


class ScannerUnavailable(Exception):
    """clamd gave no verdict; str(exc) is a short reason for operators (never file content)."""


class ScanTooLarge(Exception):
    """The file is larger than the scanner accepts; `limit_bytes` is that limit when we know it
    (our CLAMD_STREAM_MAX_BYTES), None when clamd's own StreamMaxLength refused it."""

    def __init__(self, message: str, *, limit_bytes: int | None) -> None:
        super().__init__(message)
        self.limit_bytes = limit_bytes


@dataclass(frozen=True)
class Verdict:
    infected: bool
    signature: str = ""  # clamd's name for what it found, e.g. "Portcullis.Test.EICAR.UNOFFICIAL"


def scanner_configured() -> bool:
    return bool(settings.CLAMD_SOCKET or settings.CLAMD_HOST)


def scan(content: IO[bytes]) -> Verdict:
    """Send `content` (from position 0) to clamd and return its verdict; `content` is left at 0."""
    size = content.seek(0, io.SEEK_END)
    content.seek(0)
    limit = settings.CLAMD_STREAM_MAX_BYTES
    if size > limit:
        logger.info("Not scanned: %d bytes is over CLAMD_STREAM_MAX_BYTES (%d)", size, limit)
        raise ScanTooLarge(
            f"{size} bytes is over CLAMD_STREAM_MAX_BYTES ({limit} bytes)", limit_bytes=limit
        )
    where = _address()
    try:
        reply = _instream(content, limit)
    except TimeoutError as exc:
        raise _unavailable(where, f"no answer within {settings.CLAMD_TIMEOUT_SECONDS} s") from exc
    except OSError as exc:
        raise _unavailable(where, exc.strerror or exc.__class__.__name__) from exc
    except (UnicodeError, ValueError, OverflowError) as exc:  # a host or port sockets refuse
        raise _unavailable(where, f"unusable address ({exc.__class__.__name__})") from exc
    finally:
        content.seek(0)
    verdict = _verdict(reply, where)
    if verdict.infected:
        logger.info("clamd found %s in a file of %d bytes", verdict.signature, size)
    else:
        logger.debug("clamd found nothing in a file of %d bytes", size)
    return verdict


def _address() -> str:
    if settings.CLAMD_SOCKET:
        return settings.CLAMD_SOCKET
    return f"{settings.CLAMD_HOST}:{settings.CLAMD_PORT}"


def _unavailable(where: str, reason: str) -> ScannerUnavailable:
    logger.debug("Not scanned: clamd at %s: %s", where, reason)  # the caller logs the warning
    return ScannerUnavailable(f"clamd at {where}: {reason}")


def _connect(timeout: float) -> socket.socket:
    if settings.CLAMD_SOCKET:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(settings.CLAMD_SOCKET)
        except BaseException:
            sock.close()
            raise
        return sock
    sock = socket.create_connection((settings.CLAMD_HOST, settings.CLAMD_PORT), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def _instream(content: IO[bytes], limit: int) -> bytes:
    """clamd's raw reply to INSTREAM with `content` (read from position 0)."""
    timeout = settings.CLAMD_TIMEOUT_SECONDS
    deadline = time.monotonic() + timeout  # for the whole exchange, however slowly clamd reads
    with _connect(timeout) as sock:
        try:
            _send(sock, content, limit, deadline)
        except (BrokenPipeError, ConnectionResetError) as exc:
            # clamd hangs up when the stream passes its StreamMaxLength; its reason is still there
            # to read. Without one, the send's error is the reason.
            hung_up = exc
        else:
            return _receive(sock, deadline)
        try:
            reply = _receive(sock, max(deadline, time.monotonic() + 1))
        except OSError:
            reply = b""
        if not reply:
            raise hung_up
        return reply


def _send(sock: socket.socket, content: IO[bytes], limit: int, deadline: float) -> None:
    sock.sendall(b"zINSTREAM\0")
    sent = 0
    while chunk := content.read(CHUNK_BYTES):
        _time_left(sock, deadline)
        sent += len(chunk)
        if sent > limit:  # the file grew after it was measured
            raise ScanTooLarge(
                f"over CLAMD_STREAM_MAX_BYTES ({limit} bytes) while sending", limit_bytes=limit
            )
        sock.sendall(struct.pack(">I", len(chunk)) + chunk)
    _time_left(sock, deadline)
    sock.sendall(struct.pack(">I", 0))


def _time_left(sock: socket.socket, deadline: float) -> None:
    """The socket's next wait ends at the deadline; past it, TimeoutError."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError
    sock.settimeout(remaining)


def _receive(sock: socket.socket, deadline: float) -> bytes:
    """The reply up to its NUL (or the end of the connection), by `deadline`."""
    reply = b""
    while b"\0" not in reply:
        _time_left(sock, deadline)
        data = sock.recv(REPLY_MAX_BYTES + 1 - len(reply))
        if not data:
            break
        reply += data
        if len(reply) > REPLY_MAX_BYTES:
            break
    return reply


def _verdict(reply: bytes, where: str) -> Verdict:
    if not reply:
        raise _unavailable(where, "closed the connection without answering")
    if len(reply) > REPLY_MAX_BYTES:
        raise _unavailable(where, f"answered more than {REPLY_MAX_BYTES} bytes")
    text = reply.split(b"\0", 1)[0].decode("utf-8", errors="replace").strip()
    if text == "stream: OK":
        return Verdict(infected=False)
    if text.startswith("stream: ") and text.endswith(" FOUND"):
        signature = text.removeprefix("stream: ").removesuffix(" FOUND").strip()
        if signature:
            return Verdict(infected=True, signature=signature)
    if text.startswith(_SIZE_LIMIT_REPLY) and text.endswith("ERROR"):
        logger.info("Not scanned: clamd at %s refused it as over its StreamMaxLength", where)
        raise ScanTooLarge("over clamd's StreamMaxLength", limit_bytes=None)
    if text.endswith(" ERROR"):
        raise _unavailable(where, f"answered {text[:200]!r}")
    raise _unavailable(where, f"answered something that is not clamd's: {text[:80]!r}")
