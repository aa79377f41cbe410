"""Under ASGI, Django reads whole bodies before any view runs: the guard in project/asgi.py
answers large and unannounced bodies 413 before anything reads them."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus

import pytest

from project.asgi import application

DETAIL = (
    "This server runs under ASGI, which reads whole request bodies before checking them, so it "
    "accepts only small ones; serve uploads with gunicorn (WSGI)."
)


class FakeServer:
    """Plays the ASGI server: hands out the body on receive(), collects what is sent."""

    def __init__(self, body: bytes = b"", chunk: int = 64 * 1024) -> None:
        self.chunks = [body[i : i + chunk] for i in range(0, len(body), chunk)] or [b""]
        self.receive_calls = 0
        self.sent: list[dict] = []

    async def receive(self) -> dict:
        self.receive_calls += 1
        if self.chunks:
            chunk = self.chunks.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(self.chunks)}
        await asyncio.sleep(3600)  # the client stays connected, sending nothing more
        raise AssertionError("unreachable")

    async def send(self, message: dict) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return next(m["status"] for m in self.sent if m["type"] == "http.response.start")

    @property
    def headers(self) -> dict[str, str]:
        start = next(m for m in self.sent if m["type"] == "http.response.start")
        return {name.decode().lower(): value.decode() for name, value in start["headers"]}

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")


def scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 443),
    }


def serve(request_scope: dict, server: FakeServer) -> FakeServer:
    """Run the app on its own event loop in a thread: the browser tests' Playwright keeps a
    loop running in the main thread, where asyncio.run() would refuse to start."""
    call = asyncio.wait_for(application(request_scope, server.receive, server.send), 30)
    with ThreadPoolExecutor(max_workers=1) as thread:
        thread.submit(asyncio.run, call).result()
    return server


def assert_refused_too_large(server: FakeServer) -> None:
    assert server.status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert server.headers["content-type"] == "application/json"
    assert json.loads(server.body) == {"code": "request_too_large", "detail": DETAIL}


def test_a_content_length_over_the_cap_is_refused_unread(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    server = FakeServer(b"x" * 1001)
    serve(scope("POST", "/api/v1/uploads/", [(b"content-length", b"1001")]), server)
    assert_refused_too_large(server)
    assert server.receive_calls == 0


def test_the_default_cap_refuses_a_large_upload_unread():
    server = FakeServer()
    length = str(10 * 1024 * 1024).encode()  # within the default policy, over Django's 2.5 MiB
    headers = [
        (b"content-type", b"multipart/form-data; boundary=x"),
        (b"content-length", length),
    ]
    serve(scope("POST", "/api/v1/uploads/?policy=default", headers), server)
    assert_refused_too_large(server)
    assert server.receive_calls == 0


def test_a_chunked_body_is_refused_unread():
    server = FakeServer(b"hello")
    serve(scope("POST", "/upload/", [(b"transfer-encoding", b"chunked")]), server)
    assert_refused_too_large(server)
    assert server.receive_calls == 0


@pytest.mark.parametrize("lengths", [[b"10", b"20"], [b"ten"], [b"-1"]])
def test_an_ambiguous_content_length_is_refused_unread(lengths):
    server = FakeServer(b"x" * 10)
    serve(scope("POST", "/upload/", [(b"content-length", n) for n in lengths]), server)
    assert_refused_too_large(server)
    assert server.receive_calls == 0


def test_a_body_longer_than_announced_is_cut_off_at_the_cap(settings):
    """HTTP/2 need not announce a length: the guard counts what Django reads."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    server = FakeServer(b"x" * 10_000, chunk=100)
    request = scope("POST", "/api/v1/uploads/", [])
    request["http_version"] = "2"
    serve(request, server)
    assert_refused_too_large(server)
    assert server.receive_calls == 11  # the cap plus one chunk, then Django was told to stop
    assert [m["type"] for m in server.sent] == ["http.response.start", "http.response.body"]


@pytest.mark.django_db(transaction=True)  # Django answers in its own thread
def test_a_small_get_passes_through_to_django():
    server = serve(scope("GET", "/health", []), FakeServer())
    assert server.status == HTTPStatus.OK
    assert json.loads(server.body) == {"ok": True}
    assert "x-request-id" in server.headers  # Django's middleware ran


@pytest.mark.django_db(transaction=True)
def test_a_small_post_reaches_django(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    server = FakeServer(b"{}")
    headers = [(b"content-length", b"2"), (b"content-type", b"application/json")]
    serve(scope("POST", "/api/v1/uploads/", headers), server)
    assert server.status == HTTPStatus.UNAUTHORIZED  # Django's answer, not the guard's
    assert json.loads(server.body)["code"] == "not_authenticated"
