"""A real clamd for the tests, with a one-line database that knows only the EICAR test file.

`clamd_server` (session) starts it on a unix socket and on 127.0.0.1:<free port>, with
StreamMaxLength 1M so clamd's own size limit is reachable with a 2 MiB file. `clamd_socket`
points settings.CLAMD_SOCKET at it for one test. Without clamd installed the tests that need it
are skipped, except in CI (CI=true), where they fail.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

CLAMD_PATHS = ("/usr/sbin/clamd",)
START_SECONDS = 30
SIGNATURE = "Portcullis.Test.EICAR"
# clamd's name for a hit of a signature outside its official databases.
DETECTED_AS = f"{SIGNATURE}.UNOFFICIAL"
STREAM_MAX_BYTES = 1024 * 1024

# Assembled at run time, so no file of the repository holds the test string in one piece.
EICAR = ("X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + "EICAR-STANDARD-ANTIVIRUS-" + "TEST-FILE!$H+H*").encode()


@dataclass(frozen=True)
class ClamdServer:
    socket_path: str
    host: str
    port: int
    directory: Path
    eicar: bytes = EICAR
    detected_as: str = DETECTED_AS
    stream_max_bytes: int = STREAM_MAX_BYTES

    def log(self) -> str:
        return "\n".join(
            path.read_text(errors="replace")
            for path in (self.directory / "clamd.log", self.directory / "clamd.out")
            if path.exists()
        )


def clamd_binary() -> str | None:
    for path in CLAMD_PATHS:
        if os.access(path, os.X_OK):
            return path
    return shutil.which("clamd")


def free_port() -> int:
    """A TCP port nothing listens on now (another process could take it before clamd does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_config(directory: Path, port: int) -> Path:
    database = directory / "db"
    database.mkdir()
    md5 = hashlib.md5(EICAR, usedforsecurity=False).hexdigest()
    (database / "portcullis-test.hdb").write_text(f"{md5}:{len(EICAR)}:{SIGNATURE}\n")
    config = directory / "clamd.conf"
    config.write_text(
        f"LocalSocket {directory}/clamd.sock\n"
        f"TCPSocket {port}\n"
        "TCPAddr 127.0.0.1\n"
        f"DatabaseDirectory {database}\n"
        f"TemporaryDirectory {directory}\n"
        "Foreground yes\n"
        f"LogFile {directory}/clamd.log\n"
        f"PidFile {directory}/clamd.pid\n"
        "StreamMaxLength 1M\n"
        "SelfCheck 0\n"
    )
    return config


def answers_ping(address: str | tuple[str, int]) -> bool:
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect(address)
            sock.sendall(b"zPING\0")
            return sock.recv(16) == b"PONG\0"
    except OSError:
        return False


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def clamd_server() -> Iterator[ClamdServer]:
    binary = clamd_binary()
    if binary is None:
        reason = "clamd is not installed (apt-get install clamav-daemon)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must run the scanner tests")
        pytest.skip(reason)
    # Under /tmp with a short name: a unix socket's path is at most 108 bytes.
    directory = Path(tempfile.mkdtemp(prefix="clamd-", dir="/tmp"))
    port = free_port()
    server = ClamdServer(
        socket_path=str(directory / "clamd.sock"), host="127.0.0.1", port=port, directory=directory
    )
    config = write_config(directory, port)
    with (directory / "clamd.out").open("wb") as output:
        process = subprocess.Popen(
            [binary, f"--config-file={config}"],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + START_SECONDS
        while not (answers_ping(server.socket_path) and answers_ping((server.host, port))):
            if process.poll() is not None:
                pytest.fail(f"clamd exited with {process.returncode}:\n{server.log()}")
            if time.monotonic() > deadline:
                pytest.fail(f"clamd did not answer PING within {START_SECONDS} s:\n{server.log()}")
            time.sleep(0.1)
        yield server
    finally:
        stop(process)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def clamd_socket(settings, clamd_server: ClamdServer) -> ClamdServer:
    """The test clamd as the scanner of this test, over its unix socket."""
    settings.CLAMD_SOCKET = clamd_server.socket_path
    settings.CLAMD_HOST = ""
    return clamd_server
