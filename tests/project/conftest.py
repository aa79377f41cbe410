"""Fixtures for the project's plumbing: what the configured log handler writes, and every record."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from project.logging import RequestIdFilter


def _console_handler() -> logging.StreamHandler:
    """The handler settings.LOGGING installs on the root logger (the one with our filters)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and any(
            isinstance(f, RequestIdFilter) for f in handler.filters
        ):
            return handler
    raise AssertionError("settings.LOGGING installed no console handler with RequestIdFilter")


@pytest.fixture
def console_log() -> Iterator[io.StringIO]:
    """What the project's console handler writes during the test, filters and formatter applied."""
    handler = _console_handler()
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    try:
        yield buffer
    finally:
        handler.setStream(previous)


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{self.format(record)} {record.__dict__!r}")


@pytest.fixture
def raw_log_lines() -> Iterator[list[str]]:
    """Every record (before any filter) from every logger, at DEBUG, with all its attributes."""
    collector = _Collector()
    loggers = [logging.getLogger(), logging.getLogger("django")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(collector)
        lg.setLevel(logging.DEBUG)
    try:
        yield collector.lines
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(collector)
            lg.setLevel(level)
