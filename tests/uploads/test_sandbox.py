"""uploads.sandbox: a parser runs in a forked child within CPU, memory and wall-clock limits.

No database. Each test forks; the limits are small (1 s of CPU, 256 MiB) so the test is quick.
"""

from __future__ import annotations

import contextlib
import gc
import io
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from policies.models import UploadPolicy
from project.errors import UploadRejected
from tests.uploads import make_images
from uploads import images, pdfs, sandbox
from uploads.inspect import check_content

LIMITS = sandbox.Limits(cpu_seconds=1, memory_bytes=256 << 20, wall_seconds=10)


def rss_mib(field: str) -> float:
    """VmRSS (now) or VmHWM (the peak since the last reset) of this process, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} in /proc/self/status")


@contextlib.contextmanager
def measured() -> Iterator[dict[str, float]]:
    """Seconds taken and peak RSS growth (MiB) of this process in the block (VmHWM reset first)."""
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    cost: dict[str, float] = {}
    before, started = rss_mib("VmRSS"), time.perf_counter()
    yield cost
    cost["seconds"] = time.perf_counter() - started
    cost["rss_growth_mib"] = rss_mib("VmHWM") - before


# What the child runs


def burn_cpu() -> None:
    while True:
        pass


def allocate(size: int) -> int:
    return len(bytearray(size))


def hang(pid_file: str) -> None:
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(60)


def refuse() -> None:
    raise UploadRejected("image_too_large", "Too many frames.", limit=1000)


def fail() -> None:
    raise KeyError("missing")


def die() -> None:
    os.kill(os.getpid(), 9)


def unpicklable() -> object:
    return threading.Lock()


def read_all(source) -> bytes:
    source.seek(0)
    return source.read()


def write_at_position(dest, data: bytes) -> int:
    dest.write(data)
    return dest.tell()


# Answers


def test_a_normal_result_comes_back():
    assert sandbox.run(pow, 2, 10, limits=LIMITS) == 1024
    assert sandbox.run(dict, a=1, limits=LIMITS) == {"a": 1}


def test_upload_rejected_comes_back_with_its_code_detail_and_extra():
    with pytest.raises(UploadRejected) as caught:
        sandbox.run(refuse, limits=LIMITS)

    assert caught.value.code == "image_too_large"
    assert caught.value.detail == "Too many frames."
    assert caught.value.as_body() == {
        "code": "image_too_large",
        "detail": "Too many frames.",
        "limit": 1000,
    }


def test_other_exceptions_come_back_with_the_childs_traceback():
    with pytest.raises(KeyError) as caught:
        sandbox.run(fail, limits=LIMITS)

    assert caught.value.args == ("missing",)
    assert any("in fail" in note for note in caught.value.__notes__)


def test_an_answer_that_does_not_pickle_is_a_runtime_error():
    with pytest.raises(RuntimeError, match="cannot be sent back"):
        sandbox.run(unpicklable, limits=LIMITS)


def test_a_lambda_runs_too_since_nothing_is_pickled_on_the_way_in():
    assert sandbox.run(lambda x: x + 1, 41, limits=LIMITS) == 42


# Limits


def test_cpu_burner_is_stopped_at_the_cpu_limit():
    started = time.perf_counter()
    with pytest.raises(sandbox.LimitsExceeded, match="SIGXCPU"):
        sandbox.run(burn_cpu, limits=LIMITS)
    assert 0.9 < time.perf_counter() - started < 5  # CPU seconds: more on a busy machine


def test_allocating_2_gib_is_stopped_at_the_memory_limit():
    started = time.perf_counter()
    with pytest.raises(sandbox.LimitsExceeded, match="memory"):
        sandbox.run(allocate, 2 << 30, limits=LIMITS)
    assert time.perf_counter() - started < 2
    assert sandbox.run(allocate, 64 << 20, limits=LIMITS) == 64 << 20  # within the budget


def test_a_hanging_child_is_killed_at_the_wall_clock_timeout(tmp_path):
    pid_file = tmp_path / "pid"
    limits = sandbox.Limits(cpu_seconds=5, memory_bytes=256 << 20, wall_seconds=1)

    started = time.perf_counter()
    with pytest.raises(sandbox.LimitsExceeded, match="wall-clock"):
        sandbox.run(hang, str(pid_file), limits=limits)

    assert 1 <= time.perf_counter() - started < 3
    with pytest.raises(ProcessLookupError):  # killed and reaped
        os.kill(int(pid_file.read_text()), 0)


def test_a_child_killed_by_a_signal_exceeded_its_limits():
    with pytest.raises(sandbox.LimitsExceeded, match="SIGKILL"):
        sandbox.run(die, limits=LIMITS)


def test_the_parent_keeps_its_own_limits():
    import resource

    before = [resource.getrlimit(r) for r in (resource.RLIMIT_CPU, resource.RLIMIT_AS)]
    sandbox.run(pow, 2, 2, limits=LIMITS)
    assert [resource.getrlimit(r) for r in (resource.RLIMIT_CPU, resource.RLIMIT_AS)] == before


# Files passed to the child


def test_a_file_is_read_without_moving_the_parents_position():
    with tempfile.TemporaryFile() as upload:
        upload.write(b"0123456789")
        upload.seek(0)
        assert upload.read(3) == b"012"  # the parent's buffer now holds the rest

        assert sandbox.run(read_all, upload, limits=LIMITS) == b"0123456789"

        assert upload.tell() == 3
        assert upload.read() == b"3456789"


def test_writes_land_in_the_parents_file_at_its_position():
    with tempfile.NamedTemporaryFile() as copy:
        copy.write(b"head:")  # still in the parent's buffer: flushed before the fork

        assert sandbox.run(write_at_position, copy, b"clean", limits=LIMITS) == 10

        copy.seek(0)
        assert copy.read() == b"head:clean"


def test_an_in_memory_file_is_the_childs_own_copy():
    buffer = io.BytesIO(b"abc")

    assert sandbox.run(write_at_position, buffer, b"XYZ", limits=LIMITS) == 3
    assert buffer.getvalue() == b"abc"


# Settings


def test_limits_come_from_settings(settings):
    settings.UPLOAD_INSPECT_CPU_SECONDS = 3
    settings.UPLOAD_INSPECT_MEMORY_BYTES = 100 << 20

    assert sandbox.configured_limits() == sandbox.Limits(
        cpu_seconds=3, memory_bytes=100 << 20, wall_seconds=7
    )


def test_limits_default_when_settings_do_not_name_them(settings):
    del settings.UPLOAD_INSPECT_CPU_SECONDS
    del settings.UPLOAD_INSPECT_MEMORY_BYTES

    limits = sandbox.configured_limits()

    assert (limits.cpu_seconds, limits.memory_bytes) == (10, 512 << 20)


@pytest.mark.parametrize("value", [0, -1, "10", 1.5, True])
def test_a_bad_setting_is_a_configuration_error(settings, value):
    settings.UPLOAD_INSPECT_CPU_SECONDS = value

    with pytest.raises(ImproperlyConfigured, match="UPLOAD_INSPECT_CPU_SECONDS"):
        sandbox.configured_limits()


# check_content: a child over its limits is a refusal


@pytest.fixture
def one_cpu_second(settings):
    settings.UPLOAD_INSPECT_CPU_SECONDS = 1
    settings.UPLOAD_INSPECT_MEMORY_BYTES = 64 << 20


def test_an_image_over_the_limits_is_refused_as_invalid(one_cpu_second, monkeypatch):
    monkeypatch.setattr(images, "inspect_image", lambda *args, **kwargs: burn_cpu())

    with pytest.raises(UploadRejected) as caught:
        check_content(UploadPolicy(), io.BytesIO(make_images.benign_png()), "image/png")

    assert caught.value.code == "image_invalid"
    assert caught.value.detail == (
        "The image could not be checked within the time and memory this server allows."
    )


def test_a_reencoding_over_the_limits_is_refused_and_its_copy_removed(
    one_cpu_second, monkeypatch, upload_dirs
):
    monkeypatch.setattr(images, "_reencode", lambda *args, **kwargs: allocate(1 << 30))

    with pytest.raises(UploadRejected) as caught:
        check_content(UploadPolicy(), io.BytesIO(make_images.benign_png()), "image/png")

    assert caught.value.code == "image_invalid"
    assert list(upload_dirs.temp.iterdir()) == []


def test_a_reencoded_copy_is_written_by_the_child_into_the_parents_file(upload_dirs):
    content, reencoded = check_content(
        UploadPolicy(), io.BytesIO(make_images.benign_png()), "image/png"
    )
    try:
        assert reencoded
        assert content.tell() == 0
        assert content.read()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        content.close()


def test_a_pdf_over_the_limits_is_refused_as_unchecked(one_cpu_second, monkeypatch):
    monkeypatch.setattr(pdfs, "inspect_pdf", lambda *args, **kwargs: burn_cpu())

    with pytest.raises(UploadRejected) as caught:
        check_content(UploadPolicy(), io.BytesIO(b"%PDF-1.7\n"), "application/pdf")

    assert caught.value.code == "active_content"
    assert caught.value.detail == (
        "The PDF could not be checked for active content within the time and memory this "
        "server allows; this upload does not accept it."
    )
