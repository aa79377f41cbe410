"""uploads.scanner against a real clamd (tests/clamd_server.py) and against servers that are not
clamd: one that never answers, and ones that answer garbage."""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import IO

import pytest

from uploads.scanner import ScannerUnavailable, ScanTooLarge, Verdict, scan, scanner_configured

MiB = 1024 * 1024


@contextmanager
def temp_file(content: bytes) -> Iterator[IO[bytes]]:
    """A real temporary file, as the pipeline scans, left at its end as a writer leaves it."""
    with tempfile.TemporaryFile() as file:
        file.write(content)
        file.flush()
        yield file


@contextmanager
def fake_clamd(
    settings, handle: Callable[[socket.socket], None], *, transport: str = "tcp"
) -> Iterator[None]:
    """A server that runs `handle` on each connection, set as the scanner: on 127.0.0.1, or on a
    unix socket (whose small buffers fill quickly when nobody reads)."""
    stopping = threading.Event()
    directory = tempfile.TemporaryDirectory(prefix="fake-clamd-", dir="/tmp")
    if transport == "unix":
        path = f"{directory.name}/clamd.sock"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen()
        settings.CLAMD_SOCKET = path
    else:
        listener = socket.create_server(("127.0.0.1", 0))
        settings.CLAMD_SOCKET = ""
        settings.CLAMD_HOST = "127.0.0.1"
        settings.CLAMD_PORT = listener.getsockname()[1]
    listener.settimeout(0.1)

    def serve() -> None:
        while not stopping.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn, suppress(OSError):  # OSError: the client hung up first
                handle(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stopping.set()
        thread.join(timeout=10)
        listener.close()
        directory.cleanup()


def read_command(conn: socket.socket) -> None:
    """Read what the client sends until its zero-length chunk (or until it stops sending)."""
    conn.settimeout(5)
    received = b""
    while not received.endswith(b"\0\0\0\0"):
        data = conn.recv(65536)
        if not data:
            return
        received += data


def test_clean_file(clamd_socket):
    with temp_file(b"just some text\n" * 1000) as file:
        assert scan(file) == Verdict(infected=False)


def test_eicar_is_infected_with_clamds_name(clamd_socket, caplog):
    caplog.set_level("DEBUG", logger="portcullis.uploads")
    with temp_file(clamd_socket.eicar) as file:
        verdict = scan(file)

    assert verdict == Verdict(infected=True, signature="Portcullis.Test.EICAR.UNOFFICIAL")
    assert "Portcullis.Test.EICAR.UNOFFICIAL" in caplog.text
    assert clamd_socket.eicar.decode() not in caplog.text


def test_test_database_matches_whole_files_only(clamd_socket):
    """The .hdb signature is an md5 of the whole file: EICAR after a prefix is another file. (The
    tests rely on it: a scanned file is EICAR exactly or clean.)"""
    with temp_file(b"prefix " + clamd_socket.eicar) as file:
        assert scan(file) == Verdict(infected=False)


def test_scan_over_tcp(settings, clamd_server):
    settings.CLAMD_SOCKET = ""
    settings.CLAMD_HOST = clamd_server.host
    settings.CLAMD_PORT = clamd_server.port

    with temp_file(clamd_server.eicar) as file:
        assert scan(file) == Verdict(infected=True, signature=clamd_server.detected_as)
    with temp_file(b"clean") as file:
        assert scan(file) == Verdict(infected=False)


def test_socket_wins_over_host_when_both_are_set(settings, clamd_socket):
    settings.CLAMD_HOST = "127.0.0.1"
    settings.CLAMD_PORT = 1  # nothing listens there

    with temp_file(clamd_socket.eicar) as file:
        assert scan(file).infected


def test_reads_from_the_start_and_leaves_the_file_at_the_start(clamd_socket):
    with temp_file(clamd_socket.eicar) as file:
        file.seek(10)
        assert scan(file).infected
        assert file.tell() == 0


def test_a_file_up_to_our_limit_is_scanned(settings, clamd_socket):
    settings.CLAMD_STREAM_MAX_BYTES = len(clamd_socket.eicar)

    with temp_file(clamd_socket.eicar) as file:
        assert scan(file).infected


def test_a_file_over_our_limit_is_too_large_without_asking_clamd(settings, tmp_path):
    settings.CLAMD_SOCKET = str(tmp_path / "no-clamd-here.sock")  # connecting would fail
    settings.CLAMD_STREAM_MAX_BYTES = 1024

    with temp_file(b"x" * 1025) as file:
        with pytest.raises(ScanTooLarge) as raised:
            scan(file)
        assert file.tell() == 0

    assert raised.value.limit_bytes == 1024


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_a_file_over_clamds_stream_max_length_is_too_large(settings, clamd_socket, transport):
    """clamd hangs up mid-stream (a broken pipe here) and says why; we read why."""
    if transport == "tcp":
        settings.CLAMD_SOCKET = ""
        settings.CLAMD_HOST = clamd_socket.host
        settings.CLAMD_PORT = clamd_socket.port
    settings.CLAMD_STREAM_MAX_BYTES = 4 * MiB
    assert clamd_socket.stream_max_bytes < 2 * MiB

    with temp_file(b"\0" * 2 * MiB) as file:
        with pytest.raises(ScanTooLarge) as raised:
            scan(file)
        assert file.tell() == 0

    assert raised.value.limit_bytes is None


def test_a_missing_socket_is_unavailable(settings, tmp_path):
    path = str(tmp_path / "no-clamd-here.sock")
    settings.CLAMD_SOCKET = path

    with temp_file(b"clean") as file:
        with pytest.raises(ScannerUnavailable, match="No such file") as raised:
            scan(file)
        assert file.tell() == 0

    assert path in str(raised.value)


def test_a_closed_port_is_unavailable(settings):
    with socket.create_server(("127.0.0.1", 0)) as bound:
        port = bound.getsockname()[1]
    settings.CLAMD_SOCKET = ""
    settings.CLAMD_HOST = "127.0.0.1"
    settings.CLAMD_PORT = port

    with temp_file(b"clean") as file, pytest.raises(ScannerUnavailable, match="refused"):
        scan(file)


@pytest.mark.parametrize("size", [10, 4 * MiB], ids=["stuck-receiving", "stuck-sending"])
def test_a_server_that_never_answers_times_out(settings, size):
    """It accepts and then neither reads nor answers: the scan gives up after the timeout,
    whether it is waiting for the answer or stuck sending a file the server does not read."""
    release = threading.Event()
    settings.CLAMD_TIMEOUT_SECONDS = 1
    settings.CLAMD_STREAM_MAX_BYTES = 16 * MiB

    with (
        fake_clamd(settings, lambda conn: release.wait(10), transport="unix"),
        temp_file(b"x" * size) as file,
    ):
        started = time.monotonic()
        try:
            with pytest.raises(ScannerUnavailable, match=r"no answer within 1 s"):
                scan(file)
        finally:
            release.set()
        elapsed = time.monotonic() - started
        assert file.tell() == 0

    assert 0.9 < elapsed < 2.5


def test_a_server_that_reads_slowly_is_given_the_timeout_for_the_whole_scan(settings):
    """Each read comes in time for the next send, but the whole stream would take minutes: the
    timeout bounds the scan, not each step."""
    release = threading.Event()
    settings.CLAMD_TIMEOUT_SECONDS = 1
    settings.CLAMD_STREAM_MAX_BYTES = 16 * MiB

    def trickle(conn: socket.socket) -> None:
        while not release.is_set():
            conn.recv(4096)
            release.wait(0.05)

    with fake_clamd(settings, trickle, transport="unix"), temp_file(b"x" * 4 * MiB) as file:
        started = time.monotonic()
        try:
            with pytest.raises(ScannerUnavailable, match=r"no answer within 1 s"):
                scan(file)
        finally:
            release.set()
        elapsed = time.monotonic() - started
    assert 0.9 < elapsed < 2.5


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (b"HELLO\0", "not clamd's"),
        (b"stream: OK but not really\0", "not clamd's"),
        (b"stream:  FOUND\0", "not clamd's"),
        (b"\xff\xfe\0", "not clamd's"),
        (b"x" * 10_000, "more than 4096 bytes"),
        (b"", "without answering"),
        (b"Can't allocate memory ERROR\0", "Can't allocate memory ERROR"),
    ],
)
def test_a_server_that_answers_garbage_is_unavailable(settings, answer, reason):
    def handle(conn: socket.socket) -> None:
        read_command(conn)
        conn.sendall(answer)

    with fake_clamd(settings, handle), temp_file(b"clean") as file:
        with pytest.raises(ScannerUnavailable, match=reason):
            scan(file)
        assert file.tell() == 0


def test_an_answer_without_its_nul_is_read_to_the_end_of_the_connection(settings):
    def handle(conn: socket.socket) -> None:
        read_command(conn)
        conn.sendall(b"stream: Some.Thing FOUND")

    with fake_clamd(settings, handle), temp_file(b"clean") as file:
        assert scan(file) == Verdict(infected=True, signature="Some.Thing")


def test_the_stream_is_clamds_instream_protocol(settings):
    """What a server receives: the NUL-terminated command, length-prefixed chunks, a zero chunk."""
    received = bytearray()

    def handle(conn: socket.socket) -> None:
        conn.settimeout(5)
        while not received.endswith(b"\0\0\0\0"):
            data = conn.recv(65536)
            if not data:
                break
            received.extend(data)
        conn.sendall(b"stream: OK\0")

    content = bytes(range(256)) * 1000  # 256,000 bytes: four 64 KiB chunks (the last shorter)
    with fake_clamd(settings, handle), temp_file(content) as file:
        assert scan(file) == Verdict(infected=False)

    assert received.startswith(b"zINSTREAM\0")
    rest = bytes(received[len(b"zINSTREAM\0") :])
    chunks = []
    while True:
        length = int.from_bytes(rest[:4], "big")
        rest = rest[4:]
        if length == 0:
            break
        chunks.append(rest[:length])
        rest = rest[length:]
    assert rest == b""
    assert b"".join(chunks) == content
    assert len(chunks) > 1


@pytest.mark.parametrize(
    ("socket_path", "host", "configured"),
    [
        ("", "", False),
        ("/run/clamav/clamd.ctl", "", True),
        ("", "clamd.internal", True),
    ],
)
def test_scanner_configured(settings, socket_path, host, configured):
    settings.CLAMD_SOCKET = socket_path
    settings.CLAMD_HOST = host

    assert scanner_configured() is configured
