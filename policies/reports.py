"""CSP violation reports: parsed from either browser format, reduced, counted, throttled, purged.

A report is reduced to (document path, directive, blocked URI) before anything is kept or logged:
no query string, fragment or user info survives, and a cross-origin blocked URI keeps only its
origin. Rows are counted with `F()` updates, so concurrent reports never lose a count; past
`settings.CSP_REPORTS_MAX_ROWS` distinct rows, new combinations are counted in one overflow row.
A report whose fields hold control characters (NUL included) or lone surrogates, or whose document
is not an absolute http(s) URL (nor about:, blob:, data:), or is a page of a host this site does not
serve (ALLOWED_HOSTS), refuses the whole request. Directive names this project does not know are
counted as "other", so made-up names cannot each take a row.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import SplitResult, urlsplit

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import F
from django.http.request import validate_host
from django.utils import timezone

from policies.models import CspReport
from policies.validators import CSP_DIRECTIVES
from project.errors import PortcullisError

logger = logging.getLogger("portcullis.csp_reports")

# The body types browsers send: `report-uri` (one object) and the Reporting API (a list).
CSP_REPORT = "application/csp-report"
REPORTS_JSON = "application/reports+json"
PLAIN_JSON = "application/json"
CONTENT_TYPES = (CSP_REPORT, REPORTS_JSON, PLAIN_JSON)

# Distinct (path, directive, blocked URI) keys one request may carry; a browser's batch repeats
# keys, so more than this is a flood, not a page.
MAX_KEYS_PER_REQUEST = 100
THROTTLE_WINDOW_SECONDS = 60

OVERFLOW_PATH = "(overflow)"
_DIRECTIVE = re.compile(r"[a-z][a-z0-9-]*")
# Directives a browser may name in a report: the ones a rule can set, and older ones browsers
# still report. Any other well-formed name is stored as OTHER_DIRECTIVE.
KNOWN_DIRECTIVES = CSP_DIRECTIVES | {
    "block-all-mixed-content",
    "navigate-to",
    "plugin-types",
    "prefetch-src",
    "require-sri-for",
}
OTHER_DIRECTIVE = "other"
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
_WEB_SCHEMES = frozenset({"http", "https", "ws", "wss"})
# A document is a web page (absolute http(s) URL with a host) or one of these, kept by scheme only.
_DOCUMENT_SCHEMES = frozenset({"http", "https"})
_NON_WEB_DOCUMENT_SCHEMES = frozenset({"about", "blob", "data"})
# C0 controls (NUL included), DEL and C1 controls: no URL or directive a browser sends holds one,
# and PostgreSQL cannot store NUL in text at all.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_FIELD_LENGTHS = {
    field: CspReport._meta.get_field(field).max_length
    for field in ("document_path", "directive", "blocked_uri")
}


class ReportRefused(PortcullisError):
    """A report body this endpoint will not store (nothing of it is kept)."""


@dataclass(frozen=True, order=True)
class Violation:
    """One report as stored: reduced and truncated to the model's lengths."""

    document_path: str
    directive: str
    blocked_uri: str


# --- Parsing ------------------------------------------------------------------------------------


def require_content_type(content_type: str) -> str:
    """The body type in lower case, if it is one reports come in; else unsupported_media_type."""
    content_type = content_type.lower()
    if content_type not in CONTENT_TYPES:
        raise ReportRefused(
            "unsupported_media_type",
            f"Send reports as {', '.join(CONTENT_TYPES)}; got {content_type[:100] or 'no type'}.",
        )
    return content_type


def parse_reports(body: bytes, content_type: str, *, hosts: Sequence[str]) -> list[Violation]:
    """The CSP violations in a request body; ReportRefused if any part of it is malformed.

    `hosts`: the hosts whose pages may report, as ALLOWED_HOSTS spells them (patterns included).
    """
    content_type = require_content_type(content_type)
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):  # bad JSON or encoding; absurd nesting
        raise ReportRefused("parse_error", "The body is not valid JSON.") from None

    if isinstance(payload, dict) and content_type in (CSP_REPORT, PLAIN_JSON):
        return [_from_report_uri(payload, hosts)]
    if isinstance(payload, list) and content_type in (REPORTS_JSON, PLAIN_JSON):
        return _from_reporting_api(payload, hosts)
    expected = {
        CSP_REPORT: 'an object {"csp-report": {...}}',
        REPORTS_JSON: "a list of reports",
        PLAIN_JSON: 'an object {"csp-report": {...}} or a list of reports',
    }[content_type]
    raise ReportRefused("bad_request", f"A {content_type} body must be {expected}.")


def _from_report_uri(payload: dict[str, Any], hosts: Sequence[str]) -> Violation:
    report = payload.get("csp-report")
    if not isinstance(report, dict):
        raise ReportRefused("bad_request", 'The body must hold a "csp-report" object.')
    directive = report.get("effective-directive") or report.get("violated-directive")
    return _violation(
        document_url=report.get("document-uri"),
        directive=directive,
        blocked=report.get("blocked-uri"),
        names=("document-uri", "effective-directive", "blocked-uri"),
        hosts=hosts,
    )


def _from_reporting_api(payload: list[Any], hosts: Sequence[str]) -> list[Violation]:
    violations = []
    for entry in payload:
        if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
            raise ReportRefused("bad_request", 'Each report must be an object with a "type".')
        if entry["type"] != "csp-violation":
            continue  # other report types (deprecation, intervention, ...) are not ours
        body = entry.get("body")
        if not isinstance(body, dict):
            raise ReportRefused("bad_request", 'A csp-violation report must carry a "body".')
        violations.append(
            _violation(
                document_url=body.get("documentURL") or entry.get("url"),
                directive=body.get("effectiveDirective"),
                blocked=body.get("blockedURL"),
                names=("documentURL", "effectiveDirective", "blockedURL"),
                hosts=hosts,
            )
        )
    return violations


def _violation(
    *,
    document_url: Any,
    directive: Any,
    blocked: Any,
    names: tuple[str, str, str],
    hosts: Sequence[str],
) -> Violation:
    url_name, directive_name, blocked_name = names
    if not isinstance(document_url, str) or not document_url.strip():
        raise ReportRefused("bad_request", f'The report has no "{url_name}".')
    if not isinstance(directive, str) or not directive.strip():
        raise ReportRefused("bad_request", f'The report has no "{directive_name}".')
    if blocked is not None and not isinstance(blocked, str):
        raise ReportRefused("bad_request", f'"{blocked_name}" must be a string.')
    _require_clean_text(document_url, url_name)
    _require_clean_text(directive, directive_name)
    _require_clean_text(blocked or "", blocked_name)
    # Old browsers send the whole directive ("script-src 'self'") as violated-directive.
    directive = directive.split()[0].lower()
    if not _DIRECTIVE.fullmatch(directive):
        raise ReportRefused("bad_request", f'"{directive_name}" is not a directive name.')
    if directive not in KNOWN_DIRECTIVES:
        directive = OTHER_DIRECTIVE
    try:
        document = urlsplit(document_url.strip())
        _require_document_url(document, url_name)
        _require_site_document(document, url_name, hosts)
        blocked_uri = reduce_blocked_uri(blocked or "", document)
    except ValueError:
        raise ReportRefused(
            "bad_request", "The report carries a URL that does not parse."
        ) from None
    return Violation(
        document_path=_truncate("document_path", document_path(document)),
        directive=_truncate("directive", directive),
        blocked_uri=_truncate("blocked_uri", blocked_uri),
    )


def _require_clean_text(value: str, name: str) -> None:
    """bad_request unless `value` is text every database stores as given.

    JSON can carry a lone surrogate (`"\\ud800"`), which has no UTF-8 form, and NUL, which
    PostgreSQL refuses; both would fail at the database after parsing succeeded.
    """
    if _CONTROL.search(value):
        raise ReportRefused("bad_request", f'"{name}" contains a control character.')
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ReportRefused("bad_request", f'"{name}" is not valid Unicode text.') from None


def _require_document_url(document: SplitResult, name: str) -> None:
    """bad_request unless the document is an http(s) URL with a host, or about:, blob: or data:.

    ValueError (from `.port`) when the port is not a number in range; the caller refuses that too.
    """
    scheme = document.scheme.lower()
    if scheme in _NON_WEB_DOCUMENT_SCHEMES:
        return
    if scheme in _DOCUMENT_SCHEMES and document.hostname:
        _ = document.port  # raises ValueError on a port that is not a number in range
        return
    raise ReportRefused(
        "bad_request", f'"{name}" must be an absolute http(s) URL (or about:, blob:, data:).'
    )


def _require_site_document(document: SplitResult, name: str, hosts: Sequence[str]) -> None:
    """bad_request unless the document is a page of one of `hosts` (a blob: URL by the origin
    it holds). about: and data: documents carry no host; they are frames of the site's pages,
    and are kept by scheme only (see document_path)."""
    scheme = document.scheme.lower()
    if scheme == "blob":
        inner = urlsplit(document.path)  # blob:https://example.com/<uuid>
        host = inner.hostname if inner.scheme.lower() in _DOCUMENT_SCHEMES else None
    elif scheme in _DOCUMENT_SCHEMES:
        host = document.hostname
    else:
        return
    if host:
        host = host.removesuffix(".")  # as Django reads a Host header
        host = f"[{host}]" if ":" in host else host  # IPv6, as ALLOWED_HOSTS writes it
    if not host or not validate_host(host, hosts):
        raise ReportRefused("bad_request", f'"{name}" is not a page of this site.')


def document_path(document: SplitResult) -> str:
    """The document's path: never its query string or fragment; a non-web URL by scheme only."""
    scheme = document.scheme.lower()
    if scheme and scheme not in _WEB_SCHEMES:
        return f"{scheme}:"  # about:, data:, blob: documents: the rest is content, not a place
    return document.path or "/"


def reduce_blocked_uri(blocked: str, document: SplitResult) -> str:
    """What was blocked, without query, fragment or user info.

    Keywords (`inline`, `eval`, `data`, ...) stay as they are; a `data:`/`blob:` URL becomes its
    scheme (as browsers report it); a web URL keeps its path only when it has the document's origin.
    """
    blocked = blocked.strip()
    scheme, colon, _rest = blocked.partition(":")
    if not colon or not _SCHEME.fullmatch(scheme.lower()):
        return re.split(r"[?#]", blocked, maxsplit=1)[0]  # a keyword, or empty
    url = urlsplit(blocked)
    scheme = url.scheme.lower()
    if scheme not in _WEB_SCHEMES or not url.hostname:
        return scheme
    origin = _origin(url)
    if (
        document.scheme.lower() in _WEB_SCHEMES
        and document.hostname
        and origin == _origin(document)
    ):
        return origin + (url.path or "/")
    return origin


def _origin(url: SplitResult) -> str:
    """scheme://host[:port] in lower case, the port only when it is not the scheme's default."""
    scheme, host, port = url.scheme.lower(), url.hostname or "", url.port  # .port may raise
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    return f"{scheme}://{host}"


def _truncate(field: str, value: str) -> str:
    return value[: _FIELD_LENGTHS[field]]


# --- Recording ----------------------------------------------------------------------------------


def csp_reports_record(*, violations: Iterable[Violation], now: datetime | None = None) -> int:
    """Count each violation on its row (or the overflow row past the cap); returns how many.

    Identical violations in one request are counted with one update. Keys are handled in sorted
    order, so two requests never lock the same rows in opposite orders.
    """
    counts = Counter(violations)
    if len(counts) > MAX_KEYS_PER_REQUEST:
        raise ReportRefused(
            "bad_request",
            f"One request may carry at most {MAX_KEYS_PER_REQUEST} distinct violations.",
        )
    now = now or timezone.now()
    with transaction.atomic():
        for violation in sorted(counts):
            _count(violation, counts[violation], now)
    return counts.total()


def _count(violation: Violation, times: int, now: datetime) -> None:
    key = {
        "document_path": violation.document_path,
        "directive": violation.directive,
        "blocked_uri": violation.blocked_uri,
    }
    overflow = False
    if not _bump(key, times, now):
        overflow = (
            CspReport.objects.filter(is_overflow=False).count() >= settings.CSP_REPORTS_MAX_ROWS
        )
        if overflow:
            key = {"document_path": OVERFLOW_PATH, "directive": "", "blocked_uri": ""}
        # get_or_create inserts in a savepoint: when a concurrent request inserted the same key
        # first, it fetches that row instead, and the F() update counts on it.
        _row, created = CspReport.objects.get_or_create(
            **key,
            defaults={"is_overflow": overflow, "count": times, "first_seen": now, "last_seen": now},
        )
        if not created:
            _bump(key, times, now)
    logger.debug(
        "CSP report counted: %s | %s | %s (+%d)%s",
        violation.document_path,
        violation.directive,
        violation.blocked_uri,
        times,
        " in the overflow row" if overflow else "",
    )


def _bump(key: dict[str, str], times: int, now: datetime) -> bool:
    return bool(CspReport.objects.filter(**key).update(count=F("count") + times, last_seen=now))


def csp_reports_purge(*, older_than: timedelta, now: datetime | None = None) -> int:
    """Delete the rows last seen before `older_than` ago; returns how many went."""
    try:
        cutoff = (now or timezone.now()) - older_than
    except OverflowError:  # before year 1: nothing is that old
        return 0
    deleted, _per_model = CspReport.objects.filter(last_seen__lt=cutoff).delete()
    return deleted


# --- Throttling ---------------------------------------------------------------------------------


def _epoch_seconds() -> float:
    return time.time()


def throttle_wait(address: str | None, *, limit: int) -> int | None:
    """Count one request from `address`; None while within `limit` a minute, else seconds to wait.

    The counters live in the shared cache (one per address and minute), so every worker and
    machine counts together. Requests without a usable address share one counter.

    With Redis, `incr` is atomic and the limit exact. Without it (REDIS_URL unset) the counters
    live in Django's DatabaseCache, whose `incr` is a read then a write, not atomic: concurrent
    requests can read the same count and both write count + 1, so a burst may get somewhat more
    than `limit` through. The limit is approximate there, which is enough to blunt a flood.
    """
    now = _epoch_seconds()
    window = int(now // THROTTLE_WINDOW_SECONDS)
    key = f"csp-report:throttle:{address or 'unknown'}:{window}"
    cache.add(key, 0, timeout=THROTTLE_WINDOW_SECONDS * 2)
    try:
        hits = cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.set(key, 1, timeout=THROTTLE_WINDOW_SECONDS * 2)
        hits = 1
    if hits <= limit:
        return None
    return max(1, math.ceil((window + 1) * THROTTLE_WINDOW_SECONDS - now))
