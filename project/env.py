"""Typed readers for environment variables that fail loudly on a bad value."""

from __future__ import annotations

import os
import re

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    """Unset or blank means the default (as in env_int): `FLAG=` cannot switch off a safe one."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name} must be one of 1/0, true/false, yes/no, on/off; got {raw!r}."
    )


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number; got {raw!r}.") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}; got {value}.")
    return value


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    """A comma-separated list; blank items are dropped."""
    raw = os.environ.get(name)
    if raw is None:
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


_RATE = re.compile(r"(\d+)\s*/\s*(second|minute|hour|day|sec|min|s|m|h|d)s?", re.IGNORECASE)


def env_rate(name: str, default: str) -> str:
    """A throttle rate as DRF reads it ("60/minute"): a positive count per second, minute,
    hour or day. Unset or blank means the default."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    match = _RATE.fullmatch(raw.strip())
    if not match or int(match.group(1)) == 0:
        raise ImproperlyConfigured(
            f"{name} must be a count per second, minute, hour or day, e.g. 60/minute; got {raw!r}."
        )
    return f"{int(match.group(1))}/{match.group(2).lower()}"
