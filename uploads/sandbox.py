"""Run a parser over hostile input in a forked child, within CPU, memory and wall-clock limits.

The image and PDF steps of the pipeline hand an uploader's bytes to Pillow and pypdf, whose cost
a small file can blow up (a few hundred KiB of PDF inflating to gigabytes, a GIF of 250,000
frames). Bounds inside the parsers (uploads.images, uploads.pdfs) refuse the known floods
politely; this module is the guard behind them for the floods nobody has thought of yet:

- `run(fn, *args, **kwargs)` forks a child that calls `fn`, with RLIMIT_CPU set to the CPU
  budget (SIGXCPU at the limit, SIGKILL a second later) and RLIMIT_AS to the child's virtual size
  at the fork plus the memory budget (allocations past it fail: MemoryError in Python, an error
  in the C libraries), and waits at most a wall-clock timeout for its answer (then kills it).
- The answer comes back over a pipe: `fn`'s return value (it must be picklable), or an
  UploadRejected rebuilt from its code and detail (its __init__ takes both, so it does not
  pickle as is), or another exception (re-raised in the parent with the child's traceback as a
  note). A child that died, ran out of memory or out of time raises LimitsExceeded here; the
  caller turns that into its own refusal.
- Budgets come from settings, through `configured_limits()`: UPLOAD_INSPECT_CPU_SECONDS (default
  10) and UPLOAD_INSPECT_MEMORY_BYTES (default 512 MiB); the wall-clock timeout is twice the CPU
  budget plus a second, so a child waiting on a slow disk is not killed for it. Keep a request's
  sandboxed steps (an image takes two: inspect, then re-encode) well inside gunicorn's timeout.

Why fork (multiprocessing's "fork" context), not spawn or forkserver: the parent is a gunicorn
sync worker (or a test process) with Django, Pillow and pypdf already imported. A forked child
starts in a few milliseconds sharing those pages copy-on-write; a spawned one would start a new
interpreter and import Django again for every upload, and would need `fn` and its arguments to
pickle. The child only parses: it never touches the database (it must not use the parent's
connection, whose socket it shares) and it ends with os._exit (multiprocessing does that), so
no atexit handler, finaliser or buffered write of the parent's runs twice. Before forking, the
parent flushes stdout, stderr and the open files it passes, so nothing buffered is written twice.

Threads: fork copies only the calling thread. A lock another thread held at that moment stays
held in the child forever; logging re-initialises its handlers' locks at fork
(os.register_at_fork), and the parsers take no other shared lock, so a sync worker (one thread)
or a threaded one is safe for what the child does. A child that still hangs meets the wall-clock
timeout. The child also puts back the default handlers of the signals gunicorn's worker catches
(and drops its wakeup fd), so a signal meant for the worker does not run the worker's handler in
the child.

Open files among the arguments (anything with a working fileno(): a TemporaryUploadedFile, a
NamedTemporaryFile) reach the child as private views: reads and writes at a position of their
own, through os.pread and os.pwrite, starting where the parent's position was. A forked child
shares the parent's file offset, so reading through the inherited object would move the parent's
offset under its buffer. Writes through a view land in the parent's file (a re-encoded copy is
written that way); objects without a file descriptor (io.BytesIO) are the child's own copy, and
what the child writes to them is lost.

This is a bound on resources, not a security boundary: the child runs as the same user with the
same files, so a parser exploited into running code is not contained (that takes seccomp or a
separate user).
"""

from __future__ import annotations

import contextlib
import io
import logging
import multiprocessing
import os
import pickle
import resource
import signal
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, TypeVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from project.errors import UploadRejected

logger = logging.getLogger("portcullis.uploads")

T = TypeVar("T")

DEFAULT_CPU_SECONDS = 10
DEFAULT_MEMORY_BYTES = 512 * 1024 * 1024
# The wall clock a child gets: this many times its CPU budget, plus a second to start and answer.
WALL_CLOCK_FACTOR = 2
WALL_CLOCK_GRACE_SECONDS = 1.0
# How long a child that has answered may take to exit before it is killed.
_EXIT_GRACE_SECONDS = 2.0

# Signals gunicorn's worker handles itself (and SIGCHLD, which its arbiter handles).
_PARENT_SIGNALS = ("SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGWINCH")
_PARENT_SIGNALS += ("SIGABRT", "SIGCHLD")

# Message kinds sent from the child.
_RETURNED, _REJECTED, _EXCEEDED, _FAILED = "returned", "rejected", "exceeded", "failed"

_FORK = multiprocessing.get_context("fork")


class LimitsExceeded(Exception):
    """The child ran out of CPU time, memory or wall-clock time, or died without answering."""


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int
    memory_bytes: int
    wall_seconds: float

    @classmethod
    def of(cls, *, cpu_seconds: int, memory_bytes: int) -> Limits:
        """Limits with the wall-clock timeout that goes with `cpu_seconds`."""
        wall = cpu_seconds * WALL_CLOCK_FACTOR + WALL_CLOCK_GRACE_SECONDS
        return cls(cpu_seconds=cpu_seconds, memory_bytes=memory_bytes, wall_seconds=wall)


def configured_limits() -> Limits:
    """The budgets in settings (UPLOAD_INSPECT_CPU_SECONDS, UPLOAD_INSPECT_MEMORY_BYTES)."""
    return Limits.of(
        cpu_seconds=_positive_setting("UPLOAD_INSPECT_CPU_SECONDS", DEFAULT_CPU_SECONDS),
        memory_bytes=_positive_setting("UPLOAD_INSPECT_MEMORY_BYTES", DEFAULT_MEMORY_BYTES),
    )


def _positive_setting(name: str, default: int) -> int:
    value = getattr(settings, name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ImproperlyConfigured(f"{name} must be a positive whole number; got {value!r}.")
    return value


def run(fn: Callable[..., T], /, *args: Any, limits: Limits | None = None, **kwargs: Any) -> T:
    """`fn(*args, **kwargs)` called in a forked child within `limits` (default: settings).

    Returns what `fn` returns; raises what it raises (UploadRejected with its code and detail);
    raises LimitsExceeded when the child runs out of CPU time, memory or wall-clock time, or dies
    without answering. `fn` and its arguments need not pickle (the child is a fork); the return
    value must. `fn` cannot take a keyword argument named `limits`.
    """
    limits = limits or configured_limits()
    name = getattr(fn, "__qualname__", repr(fn))
    _flush_before_fork([*args, *kwargs.values()])
    receiver, sender = _FORK.Pipe(duplex=False)
    process = _FORK.Process(
        target=_child, args=(sender, limits, fn, args, kwargs), name=f"sandbox {name}", daemon=True
    )
    try:
        try:
            process.start()
        finally:
            sender.close()  # the child holds the only writer: its death reads as end of file
        try:
            message = _answer(receiver, process, limits)
        finally:
            receiver.close()
            _end(process)
        return _outcome(message, name)
    except LimitsExceeded as exceeded:
        logger.warning("sandboxed %s stopped: %s", name, exceeded)
        raise


def _flush_before_fork(values: list[Any]) -> None:
    """Write out what the parent buffered, so the child neither repeats it nor writes past it."""
    files = [value for value in values if hasattr(value, "fileno")]
    for stream in (sys.stdout, sys.stderr, *files):
        flush = getattr(stream, "flush", None)
        if callable(flush):
            with contextlib.suppress(OSError, ValueError):
                flush()


def _answer(receiver: Connection, process: Any, limits: Limits) -> tuple[Any, ...]:
    """The child's message, or LimitsExceeded when it times out or dies without one."""
    if not wait([receiver, process.sentinel], timeout=limits.wall_seconds):
        process.kill()
        raise LimitsExceeded(f"no answer within the wall-clock timeout ({limits.wall_seconds:g} s)")
    if receiver.poll():
        try:
            return receiver.recv()
        except EOFError:
            pass  # it died while sending
    process.join(_EXIT_GRACE_SECONDS)
    raise LimitsExceeded(_death(process.exitcode))


def _death(exitcode: int | None) -> str:
    if exitcode is None:
        return "the child neither answered nor exited"
    if exitcode < 0:
        try:
            signame = signal.Signals(-exitcode).name
        except ValueError:
            signame = f"signal {-exitcode}"
        causes = {
            "SIGXCPU": " (the CPU time limit)",
            "SIGKILL": " (the CPU time hard limit, or the kernel's out-of-memory killer)",
        }
        return f"the child died of {signame}{causes.get(signame, '')}"
    return f"the child exited with code {exitcode} without answering"


def _end(process: Any) -> None:
    """Reap the child (killing it if it has not exited in time) and free its resources."""
    process.join(_EXIT_GRACE_SECONDS)
    if process.exitcode is None:
        process.kill()
        process.join()
    with contextlib.suppress(ValueError):  # not reaped: SIGCHLD ignored, so the kernel reaped it
        process.close()


def _outcome(message: tuple[Any, ...], name: str) -> Any:
    kind = message[0]
    if kind == _RETURNED:
        return message[1]
    if kind == _REJECTED:
        _, code, detail, extra = message
        raise UploadRejected(code, detail, **extra)
    if kind == _EXCEEDED:
        raise LimitsExceeded(message[1])
    _, payload, child_traceback = message
    error = pickle.loads(payload)  # noqa: S301 (from our own child; see the module docstring)
    error.add_note(f"Raised in the sandboxed child running {name}:\n{child_traceback}")
    raise error


# --- In the child ------------------------------------------------------------------------------


def _child(
    sender: Connection, limits: Limits, fn: Callable[..., Any], args: tuple, kwargs: dict
) -> None:
    try:
        _confine(limits)
        views: list[io.BufferedIOBase] = []
        args = tuple(_private_view(value, views) for value in args)
        kwargs = {key: _private_view(value, views) for key, value in kwargs.items()}
        try:
            message: tuple[Any, ...] = (_RETURNED, fn(*args, **kwargs))
        finally:
            for view in views:
                view.flush()
    except UploadRejected as rejected:
        message = (_REJECTED, rejected.code, rejected.detail, rejected.extra)
    except MemoryError:
        message = (_EXCEEDED, "the child ran out of memory (the memory limit)")
    except BaseException as error:  # everything reaches the parent; nothing escapes the child
        message = (_FAILED, _portable(error), traceback.format_exc())
    try:
        sender.send(message)
    except MemoryError:
        sender.send((_EXCEEDED, "the child ran out of memory sending its answer"))
    except Exception as error:  # the return value does not pickle
        failure = RuntimeError(f"the sandboxed function's answer cannot be sent back: {error!r}")
        sender.send((_FAILED, pickle.dumps(failure), traceback.format_exc()))
    finally:
        sender.close()


def _confine(limits: Limits) -> None:
    """Default signal handlers, no core dumps, and the CPU and address-space limits."""
    for signame in _PARENT_SIGNALS:
        with contextlib.suppress(AttributeError, OSError, ValueError):
            signal.signal(getattr(signal, signame), signal.SIG_DFL)
    with contextlib.suppress(ValueError):
        signal.set_wakeup_fd(-1)
    _lower_limit(resource.RLIMIT_CORE, 0, 0)
    _lower_limit(resource.RLIMIT_CPU, limits.cpu_seconds, limits.cpu_seconds + 1)
    size = _virtual_size()
    if size is None:
        logger.warning("sandbox: cannot read the virtual size; no memory limit in this child")
    else:
        _lower_limit(resource.RLIMIT_AS, size + limits.memory_bytes, size + limits.memory_bytes)


def _lower_limit(which: int, soft: int, hard: int) -> None:
    """Set a limit, never above the hard limit already in force (that would fail)."""
    _, current_hard = resource.getrlimit(which)
    if current_hard != resource.RLIM_INFINITY:
        soft, hard = min(soft, current_hard), min(hard, current_hard)
    resource.setrlimit(which, (soft, hard))


def _virtual_size() -> int | None:
    """This process's virtual memory size in bytes (Linux: the first field of statm)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            pages = int(statm.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pages * resource.getpagesize()


def _portable(error: BaseException) -> bytes:
    """The exception pickled, or a RuntimeError naming it when it does not pickle back."""
    if isinstance(error, Exception):
        with contextlib.suppress(Exception):
            payload = pickle.dumps(error)
            pickle.loads(payload)  # noqa: S301 (our own bytes)
            return payload
    return pickle.dumps(RuntimeError(f"{type(error).__qualname__}: {error}"))


def _private_view(value: Any, views: list[io.BufferedIOBase]) -> Any:
    """An open file as a private view (see the module docstring); anything else as it is."""
    if isinstance(value, (io.BytesIO, io.StringIO)) or not hasattr(value, "fileno"):
        return value
    try:
        fd = value.fileno()
        position = value.tell()
    except (AttributeError, OSError, ValueError):
        return value
    readable = _answers(value, "readable", default=True)
    writable = _answers(value, "writable", default=False)
    raw = _PositionalFile(fd, position, readable=readable, writable=writable)
    view: io.BufferedIOBase
    if readable and writable:
        view = io.BufferedRandom(raw)
    elif writable:
        view = io.BufferedWriter(raw)
    else:
        view = io.BufferedReader(raw)
    views.append(view)
    return view


def _answers(value: Any, method: str, *, default: bool) -> bool:
    ask = getattr(value, method, None)
    if not callable(ask):
        return default
    try:
        return bool(ask())
    except (OSError, ValueError):
        return default


class _PositionalFile(io.RawIOBase):
    """A file descriptor read and written at a position of its own (os.pread, os.pwrite).

    It offers no fileno(), so no library can reach the shared descriptor (and its offset) itself.
    """

    def __init__(self, fd: int, position: int, *, readable: bool, writable: bool) -> None:
        super().__init__()
        self._fd = fd
        self._position = position
        self._readable = readable
        self._writable = writable

    def readable(self) -> bool:
        return self._readable

    def writable(self) -> bool:
        return self._writable

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._readable:
            raise io.UnsupportedOperation("not readable")
        data = os.pread(self._fd, len(buffer), self._position)
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)

    def write(self, data: Any) -> int:
        if not self._writable:
            raise io.UnsupportedOperation("not writable")
        written = os.pwrite(self._fd, data, self._position)
        self._position += written
        return written

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            position = offset
        elif whence == os.SEEK_CUR:
            position = self._position + offset
        elif whence == os.SEEK_END:
            position = os.fstat(self._fd).st_size + offset
        else:
            raise ValueError(f"invalid whence ({whence})")
        if position < 0:
            raise ValueError(f"negative seek position {position}")
        self._position = position
        return position

    def tell(self) -> int:
        return self._position

    def truncate(self, size: int | None = None) -> int:
        raise io.UnsupportedOperation("a private view cannot truncate the parent's file")
