"""The ASGI entry point, behind a guard that lets only small request bodies in.

Portcullis is served by gunicorn (WSGI, gunicorn.conf.py). Django's ASGI handler reads the whole
request body into a spooled temporary file before any middleware or view runs, so the upload
pipeline's "refused before a byte is read" request cap cannot hold under ASGI. The guard answers
413 `request_too_large`, without reading the body, to a request whose Content-Length exceeds
DATA_UPLOAD_MAX_MEMORY_SIZE, or that sends a body of unannounced length (Transfer-Encoding).
A body that turns out longer than the cap anyway (HTTP/2 need not announce its length) is cut
off at the cap plus one chunk and answered the same 413.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from django.conf import settings
from django.core.asgi import get_asgi_application

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TOO_LARGE_BODY = json.dumps(
    {
        "code": "request_too_large",
        "detail": (
            "This server runs under ASGI, which reads whole request bodies before checking them, "
            "so it accepts only small ones; serve uploads with gunicorn (WSGI)."
        ),
    }
).encode()


def _body_cap() -> int | None:
    """Read per request, so a settings change (or a test's override) applies."""
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def _refuse_unread(headers: list[tuple[bytes, bytes]], cap: int | None) -> bool:
    """Whether the headers alone show a body the guard will not let Django read."""
    lengths = {value.strip() for name, value in headers if name.lower() == b"content-length"}
    if any(name.lower() == b"transfer-encoding" for name, _ in headers):
        return True  # chunked: no length to check before reading
    if not lengths:
        return False  # HTTP/1.1 without either header has no body
    if len(lengths) > 1 or not all(value.isdigit() for value in lengths):
        return True  # ambiguous or malformed framing: never guess
    return cap is not None and int(lengths.pop()) > cap


async def _send_too_large(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(TOO_LARGE_BODY)).encode()),
                (b"x-content-type-options", b"nosniff"),
                (b"cache-control", b"no-store"),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": TOO_LARGE_BODY})


class SmallBodiesOnly:
    """ASGI middleware: refuse large or unannounced request bodies before Django reads them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = _body_cap()
        if _refuse_unread(list(scope.get("headers", [])), cap):
            await _send_too_large(send)
            return
        if cap is None:
            await self.app(scope, receive, send)
            return
        await self.app(scope, _counting(receive, send, cap), send)


def _counting(receive: Receive, send: Send, cap: int) -> Receive:
    """`receive` for Django: past the cap it answers 413 itself and tells Django the client
    left, so Django stops reading and sends nothing."""
    received = 0
    refused = False

    async def counted() -> Message:
        nonlocal received, refused
        if refused:
            return {"type": "http.disconnect"}
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > cap:
                refused = True
                await _send_too_large(send)
                return {"type": "http.disconnect"}
        return message

    return counted


os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
application = SmallBodiesOnly(get_asgi_application())
