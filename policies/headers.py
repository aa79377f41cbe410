"""Header rules compiled into what each response gets, and the per-process cache of them.

One resolution serves the middleware, the admin preview and `headers_preview`, so the preview is
exactly what is sent. Precedence (DESIGN.md): enabled rules whose host (if set) and path match;
higher priority first, then exact before prefix (longer first) before regex; for each header the
first rule that sets it wins. A report-only rule never displaces an enforced header: CSP and
Permissions-Policy go out as their -Report-Only headers, the others are only previewed and logged.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from urllib.parse import unquote_to_bytes

from django.conf import settings
from django.core.cache import cache
from django.core.signals import setting_changed
from django.http.request import split_domain_port, validate_host
from django.utils.encoding import repercent_broken_unicode

from policies.models import HeaderRule, Mode, PathMatch

logger = logging.getLogger("portcullis.headers")

STAMP_KEY = "portcullis:header-rules:stamp"
STAMP_CHECK_SECONDS = 1.0
# A safety net for a lost stamp bump (the cache was down at that moment): reload regardless.
FULL_RELOAD_SECONDS = 300.0

CSP = "Content-Security-Policy"
CSP_REPORT_ONLY = "Content-Security-Policy-Report-Only"
PERMISSIONS_POLICY = "Permissions-Policy"
PERMISSIONS_POLICY_REPORT_ONLY = "Permissions-Policy-Report-Only"
HSTS = "Strict-Transport-Security"
CACHE_CONTROL = "Cache-Control"
REPORTING_ENDPOINTS = "Reporting-Endpoints"

# Paths longer than this are resolved without caching: they cannot push real pages out of the cache.
MAX_CACHED_PATH = 2048
# Distinct Host headers (ports and letter cases of the allowed hosts) whose check is remembered.
MAX_REMEMBERED_HOSTS = 64

_MATCH_RANK = {PathMatch.EXACT: 0, PathMatch.PREFIX: 1, PathMatch.REGEX: 2}
# Headers with a report-only twin; the others are rehearsed in the preview and the log only.
_REPORT_ONLY_TWIN = {CSP: CSP_REPORT_ONLY, PERMISSIONS_POLICY: PERMISSIONS_POLICY_REPORT_ONLY}


def csp_value(directives: dict[str, list[str]]) -> str:
    """The header value of stored CSP directives (no nonce: that is added per request)."""
    parts = [f"{name} {' '.join(sources)}".strip() for name, sources in directives.items()]
    return "; ".join(parts)


def _permissions_item(item: str) -> str:
    return item if item in ("*", "self", "src") else f'"{item}"'


def permissions_policy_value(features: dict[str, list[str]]) -> str:
    def allowlist(items: list[str]) -> str:
        if items == ["*"]:
            return "*"
        return "(" + " ".join(_permissions_item(i) for i in items) + ")"

    return ", ".join(f"{feature}={allowlist(items)}" for feature, items in features.items())


def hsts_value(rule: HeaderRule) -> str:
    value = f"max-age={rule.hsts_max_age}"
    if rule.hsts_include_subdomains:
        value += "; includeSubDomains"
    if rule.hsts_preload:
        value += "; preload"
    return value


def rule_headers(rule: HeaderRule) -> dict[str, str]:
    """Every header a rule sets, name to value, CSP included (without its nonce)."""
    headers = {}
    if rule.csp:
        headers[CSP] = csp_value(rule.csp)
    if rule.hsts_max_age is not None:
        headers[HSTS] = hsts_value(rule)
    simple = {
        "X-Frame-Options": rule.x_frame_options,
        "Referrer-Policy": rule.referrer_policy,
        "Cross-Origin-Opener-Policy": rule.cross_origin_opener_policy,
        "Cross-Origin-Embedder-Policy": rule.cross_origin_embedder_policy,
        "Cross-Origin-Resource-Policy": rule.cross_origin_resource_policy,
        "X-Content-Type-Options": "nosniff" if rule.x_content_type_options_nosniff else "",
        CACHE_CONTROL: rule.cache_control,
        "X-Permitted-Cross-Domain-Policies": rule.x_permitted_cross_domain_policies,
    }
    headers.update({name: value for name, value in simple.items() if value})
    if rule.permissions_policy:
        headers[PERMISSIONS_POLICY] = permissions_policy_value(rule.permissions_policy)
    if rule.reporting_endpoints:
        headers[REPORTING_ENDPOINTS] = ", ".join(
            f'{name}="{url}"' for name, url in rule.reporting_endpoints.items()
        )
    headers.update(rule.custom_headers)
    return headers


@dataclass(frozen=True)
class CompiledRule:
    name: str
    priority: int
    match_type: str
    path: str
    host: str
    report_only: bool
    headers: dict[str, str]
    csp: dict[str, list[str]]
    remove: tuple[str, ...]
    endpoints: dict[str, str]
    pattern: re.Pattern | None = None

    @classmethod
    def from_rule(cls, rule: HeaderRule) -> CompiledRule:
        return cls(
            name=rule.name,
            priority=rule.priority,
            match_type=rule.match_type,
            path=rule.path,
            host=rule.host.lower(),
            report_only=rule.mode == Mode.REPORT_ONLY,
            headers={
                name: value
                for name, value in rule_headers(rule).items()
                if name != REPORTING_ENDPOINTS  # merged across rules: see _reporting_endpoints
            },
            csp=dict(rule.csp),
            remove=tuple(rule.remove_headers),
            endpoints=dict(rule.reporting_endpoints),
            pattern=re.compile(rule.path) if rule.match_type == PathMatch.REGEX else None,
        )

    @property
    def precedence(self) -> tuple:
        # Ties after DESIGN.md's order: a rule for this host before a rule for every host.
        return (
            -self.priority,
            _MATCH_RANK[self.match_type],
            -len(self.path),
            not self.host,
            self.name,
        )

    def matches(self, host: str, path: str) -> bool:
        if self.host and self.host != host:
            return False
        if self.match_type == PathMatch.EXACT:
            return path == self.path
        if self.match_type == PathMatch.PREFIX:
            return path.startswith(self.path)
        return self.pattern.search(path) is not None


@dataclass(frozen=True)
class Decision:
    """One header for one path: its value, the rule that set it, and how it goes out."""

    header: str
    value: str
    rule: str
    report_only: bool = False
    removal: bool = False  # a rehearsed removal: previewed and logged only

    @property
    def sent_as(self) -> str | None:
        """The header name on the wire, or None for a rehearsal that is only previewed."""
        if not self.report_only:
            return self.header
        return None if self.removal else _REPORT_ONLY_TWIN.get(self.header)


@dataclass(frozen=True)
class Resolution:
    """What the rules give one (host, path), worked out once so a response only copies it."""

    decisions: tuple[Decision, ...]
    csp: dict[str, list[str]] | None = None
    csp_report_only: dict[str, list[str]] | None = None
    remove: frozenset[str] = field(default_factory=frozenset)  # lower-cased names
    removed_by: dict[str, str] = field(default_factory=dict)  # lower-cased name: rule
    # Ready-to-send headers in the form of Django's header store ({lower name: (name, value)}):
    # on every response, over HTTPS only, to signed-in users.
    always: dict[str, tuple[str, str]] = field(default_factory=dict)
    over_https: dict[str, tuple[str, str]] = field(default_factory=dict)  # always, plus HSTS
    signed_in_only: dict[str, tuple[str, str]] = field(default_factory=dict)
    csp_header: str | None = None
    csp_report_only_header: str | None = None

    def enforced(self) -> dict[str, Decision]:
        return {d.header: d for d in self.decisions if not d.report_only}


def _first_per_header(rules: list[CompiledRule], *, report_only: bool) -> dict[str, tuple]:
    """For each header (any letter case), the first rule in precedence order that sets or
    removes it: {lower name: (name, value or None for a removal, rule)}."""
    chosen: dict[str, tuple] = {}
    for rule in rules:
        if rule.report_only != report_only:
            continue
        for header, value in rule.headers.items():
            chosen.setdefault(header.lower(), (header, value, rule))
        for header in rule.remove:
            chosen.setdefault(header.lower(), (header, None, rule))
    return chosen


def _reporting_endpoints(rules: list[CompiledRule]) -> Decision | None:
    """Endpoints only tell the browser where to report, so every matching rule's count, the
    report-only ones' included (their rehearsal needs them); the first rule naming one wins."""
    merged: dict[str, str] = {}
    sources: list[str] = []
    for rule in rules:
        for name, url in rule.endpoints.items():
            if name not in merged:
                merged[name] = url
                if rule.name not in sources:
                    sources.append(rule.name)
    if not merged:
        return None
    value = ", ".join(f'{name}="{url}"' for name, url in merged.items())
    return Decision(REPORTING_ENDPOINTS, value, ", ".join(sources))


def _setting_rule(chosen: dict[str, tuple], header: str) -> CompiledRule | None:
    """The rule whose value of `header` won (None if none sets it, or the winner removes it)."""
    name_value_rule = chosen.get(header.lower())
    return name_value_rule[2] if name_value_rule and name_value_rule[1] is not None else None


def _store(pairs: Iterable[tuple[str, str]]) -> dict[str, tuple[str, str]]:
    return {name.lower(): (name, value) for name, value in pairs}


def _resolve(rules: Iterable[CompiledRule]) -> Resolution:
    rules = list(rules)
    enforced = _first_per_header(rules, report_only=False)
    rehearsed = _first_per_header(rules, report_only=True)
    decisions = [Decision(h, v, r.name) for h, v, r in enforced.values() if v is not None]
    if endpoints := _reporting_endpoints(rules):
        decisions.append(endpoints)
    decisions += [
        Decision(h, v or "", r.name, report_only=True, removal=v is None)
        for h, v, r in rehearsed.values()
    ]
    csp = _setting_rule(enforced, CSP)
    csp_ro = _setting_rule(rehearsed, CSP)
    wire = {d.header: d.value for d in decisions if not d.report_only and d.header != CSP}
    if rehearsed_pp := _setting_rule(rehearsed, PERMISSIONS_POLICY):
        wire[PERMISSIONS_POLICY_REPORT_ONLY] = rehearsed_pp.headers[PERMISSIONS_POLICY]
    conditional = {HSTS, CACHE_CONTROL}  # sent over HTTPS only, to signed-in users only
    return Resolution(
        decisions=tuple(decisions),
        csp=csp.csp if csp else None,
        csp_report_only=csp_ro.csp if csp_ro else None,
        remove=frozenset(key for key, (_h, value, _r) in enforced.items() if value is None),
        removed_by={key: r.name for key, (_h, value, r) in enforced.items() if value is None},
        always=_store((h, v) for h, v in wire.items() if h not in conditional),
        over_https=_store((h, v) for h, v in wire.items() if h != CACHE_CONTROL),
        signed_in_only=_store((h, v) for h, v in wire.items() if h == CACHE_CONTROL),
        csp_header=csp_value(csp.csp) if csp else None,
        csp_report_only_header=csp_value(csp_ro.csp) if csp_ro else None,
    )


def allowed_hosts() -> list[str]:
    """The hosts Django's request.get_host() accepts (ALLOWED_HOSTS, or its DEBUG defaults)."""
    hosts = settings.ALLOWED_HOSTS
    if settings.DEBUG and not hosts:
        hosts = [".localhost", "127.0.0.1", "[::1]"]
    return hosts


def rule_host(raw_host: str) -> str:
    """The host rules match against: lower case and without its port when it is one of
    ALLOWED_HOSTS, else "" (so a rule for a host never applies to a Host header Django refuses,
    and refused hosts all share one cache entry per path)."""
    domain, _port = split_domain_port(raw_host)  # lower-cased; "" when malformed
    return domain if domain and validate_host(domain, allowed_hosts()) else ""


def request_path(raw: str) -> str:
    """What request.path_info is for a request line's target `raw`: no query string or
    fragment, percent-decoding undone (bytes that are not UTF-8 stay percent-encoded)."""
    path = raw.partition("#")[0].partition("?")[0]  # as urlsplit, without its "//host" reading
    return repercent_broken_unicode(unquote_to_bytes(path)).decode()


class RuleSet:
    """The enabled rules, compiled and sorted once; resolutions cached per (host, path).

    The cache is keyed on the validated host (rule_host), never on the Host header as sent: a
    client choosing random hosts cannot grow it or push real pages out of it.
    """

    def __init__(self, rules: Iterable[HeaderRule], *, log_rehearsals: bool = True) -> None:
        compiled = [CompiledRule.from_rule(rule) for rule in rules if rule.enabled]
        self.rules = tuple(sorted(compiled, key=lambda r: r.precedence))
        self._cached = lru_cache(maxsize=4096)(self._resolve_uncached)
        # Host header as sent -> rule_host(); only allowed hosts are remembered, and few of them.
        self._hosts: dict[str, str] = {}
        self._logged: set[tuple[str, str]] = set()
        self._log_enabled = log_rehearsals

    def copy(self) -> RuleSet:
        """The same rules with nothing cached (for a change of ALLOWED_HOSTS)."""
        fresh = RuleSet((), log_rehearsals=self._log_enabled)
        fresh.rules, fresh._logged = self.rules, self._logged
        return fresh

    def resolve(self, host: str, path: str) -> Resolution:
        """What a request gets; `host` as the request sent it (port and case included)."""
        key = self._hosts.get(host)
        if key is None:
            key = rule_host(host)
            if key and len(self._hosts) < MAX_REMEMBERED_HOSTS:
                self._hosts[host] = key
        if len(path) > MAX_CACHED_PATH:
            return self._resolve_uncached(key, path)
        return self._cached(key, path)

    def cached_resolutions(self) -> int:
        """How many (host, path) resolutions the cache holds."""
        return self._cached.cache_info().currsize

    def _resolve_uncached(self, host: str, path: str) -> Resolution:
        """`host` as rule_host() gives it."""
        resolution = _resolve(rule for rule in self.rules if rule.matches(host, path))
        if self._log_enabled:
            self._log_rehearsals(resolution, path)
        return resolution

    def _log_rehearsals(self, resolution: Resolution, path: str) -> None:
        """Log each rehearsed header once per rule-set version (not per path: no log flood)."""
        for decision in resolution.decisions:
            key = (decision.rule, decision.header)
            if decision.report_only and decision.sent_as is None and key not in self._logged:
                self._logged.add(key)
                action = "remove" if decision.removal else f"set {decision.header}:"
                logger.info(  # the path with %r: a decoded %0A in it cannot start a log line
                    "rehearsal: rule %s would %s %s (first seen on %r)",
                    decision.rule,
                    action,
                    decision.header if decision.removal else decision.value,
                    path,
                )

    @classmethod
    def load(cls, *, log_rehearsals: bool = True) -> RuleSet:
        return cls(HeaderRule.objects.filter(enabled=True), log_rehearsals=log_rehearsals)


def bump_stamp() -> None:
    """Tell every process the rules changed (services call this on commit)."""
    try:
        cache.set(STAMP_KEY, uuid.uuid4().hex, timeout=None)
    except Exception:  # the change is committed; processes still reload within FULL_RELOAD_SECONDS
        logger.exception("could not bump the header-rules stamp in the shared cache")


class RuleSetCache:
    """Per-process compiled rules, re-checked against the shared stamp at most once a second."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: RuleSet | None = None
        self._stamp: str | None = None
        self._checked_at = 0.0
        self._loaded_at = 0.0
        self._degraded = False  # serving without the rules: the database did not answer

    def resolve(self, host: str, path: str) -> Resolution:
        """get().resolve(host, path), in one call: this runs on every request."""
        rules = self._rules
        if rules is None or time.monotonic() - self._checked_at >= STAMP_CHECK_SECONDS:
            rules = self.get()
        key = rules._hosts.get(host)
        if key is not None and len(path) <= MAX_CACHED_PATH:
            return rules._cached(key, path)
        return rules.resolve(host, path)

    def get(self) -> RuleSet:
        now = time.monotonic()
        if self._rules is not None and now - self._checked_at < STAMP_CHECK_SECONDS:
            return self._rules
        with self._lock:
            if self._rules is None or now - self._checked_at >= STAMP_CHECK_SECONDS:
                self._refresh(now)
            return self._rules

    def _refresh(self, now: float) -> None:
        try:
            stamp = self._shared_stamp()
        except Exception:  # the shared cache is down: keep serving, reload on a timer
            logger.warning("header-rules stamp unavailable; rules reload on a timer", exc_info=True)
            stamp = self._stamp
        stale = now - self._loaded_at >= FULL_RELOAD_SECONDS
        if self._rules is None or self._degraded or stamp != self._stamp or stale:
            try:
                rules = RuleSet.load()  # read after the stamp, so a change mid-load reloads
            except Exception:  # the database is down: answer anyway (/health must say 503)
                logger.warning("header rules could not be loaded; retrying", exc_info=True)
                if self._rules is None:  # until it answers: the settings' headers and CSP only
                    self._rules, self._degraded = RuleSet(()), True
            else:
                self._rules, self._degraded = rules, False
                self._stamp, self._loaded_at = stamp, now
        self._checked_at = now

    @staticmethod
    def _shared_stamp() -> str | None:
        stamp = cache.get(STAMP_KEY)
        if stamp is None:  # evicted or never set: agree on one, so processes stop reloading
            cache.add(STAMP_KEY, uuid.uuid4().hex, timeout=None)
            stamp = cache.get(STAMP_KEY)
        return stamp

    def clear(self) -> None:
        with self._lock:
            self._rules, self._stamp, self._checked_at, self._loaded_at = None, None, 0.0, 0.0
            self._degraded = False

    def forget_hosts(self) -> None:
        """Drop what was worked out under the old ALLOWED_HOSTS (the rules stay loaded)."""
        with self._lock:
            if self._rules is not None:
                self._rules = self._rules.copy()


rule_sets = RuleSetCache()


def _forget_hosts(*, setting: str, **kwargs: object) -> None:
    """Tests change ALLOWED_HOSTS at run time: drop the hosts remembered under the old value."""
    if setting in ("ALLOWED_HOSTS", "DEBUG"):
        rule_sets.forget_hosts()


setting_changed.connect(_forget_hosts, dispatch_uid="portcullis-header-rule-hosts")


def csp_exclude_prefixes(*, report_only: bool = False) -> tuple[str, ...]:
    """django-csp's EXCLUDE_URL_PREFIXES: paths its middleware sends no (report-only) CSP on."""
    name = "CONTENT_SECURITY_POLICY_REPORT_ONLY" if report_only else "CONTENT_SECURITY_POLICY"
    policy = getattr(settings, name, None) or {}
    return tuple(policy.get("EXCLUDE_URL_PREFIXES") or ())


@dataclass(frozen=True)
class PreviewRow:
    header: str
    value: str
    source: str  # the rule's name, or "settings" for Django's static floor
    note: str = ""


def _settings_floor(secure: bool) -> dict[str, str]:
    """What Django's SecurityMiddleware and XFrameOptionsMiddleware send when no rule does."""
    from csp.utils import build_policy

    floor = {
        "X-Frame-Options": settings.X_FRAME_OPTIONS,
        "X-Content-Type-Options": "nosniff" if settings.SECURE_CONTENT_TYPE_NOSNIFF else "",
        "Referrer-Policy": settings.SECURE_REFERRER_POLICY or "",
        "Cross-Origin-Opener-Policy": settings.SECURE_CROSS_ORIGIN_OPENER_POLICY or "",
        CSP: build_policy(),
    }
    if secure and settings.SECURE_HSTS_SECONDS:
        floor[HSTS] = (
            f"max-age={settings.SECURE_HSTS_SECONDS}"
            + ("; includeSubDomains" if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS else "")
            + ("; preload" if settings.SECURE_HSTS_PRELOAD else "")
        )
    return {header: value for header, value in floor.items() if value}


def _enforced_rows(resolution: Resolution, secure: bool, authenticated: bool) -> list[PreviewRow]:
    rows = []
    for header, decision in resolution.enforced().items():
        note = ""
        if header == HSTS and not secure:
            note = "not sent: HTTPS only"
        elif header == CACHE_CONTROL and not authenticated:
            note = "not sent: signed-in users only"
        elif header == CSP:
            note = "plus the page's nonce in script-src/style-src when it uses one"
        rows.append(PreviewRow(header, decision.value, decision.rule, note))
    return rows


def _title(header: str) -> str:
    return "-".join(part.capitalize() for part in header.split("-"))


def preview(
    path: str, host: str = "", *, secure: bool = True, authenticated: bool = False
) -> list[PreviewRow]:
    """Every header a response on `path` gets, and what set it: the rules as saved now."""
    resolution = RuleSet.load(log_rehearsals=False).resolve(host, path)  # the live ones log
    rows = _enforced_rows(resolution, secure, authenticated)
    on_the_wire = {row.header.lower() for row in rows}
    for decision in resolution.decisions:
        if not decision.report_only:
            continue
        if decision.sent_as:
            rows.append(PreviewRow(decision.sent_as, decision.value, decision.rule, "report-only"))
            on_the_wire.add(decision.sent_as.lower())
        else:
            verb = "would remove it" if decision.removal else "would set it"
            note = f"rehearsal: shown here and logged, not sent ({verb})"
            rows.append(PreviewRow(decision.header, decision.value, decision.rule, note))
    for header, value in _settings_floor(secure).items():
        if header.lower() not in on_the_wire and header.lower() not in resolution.remove:
            rows.append(PreviewRow(header, value, "settings", "no rule sets it"))
    removed = [
        PreviewRow(_title(h), "", resolution.removed_by[h], "removed")
        for h in sorted(resolution.remove)
    ]
    return [_unless_excluded(row, path) for row in rows] + removed


def _unless_excluded(row: PreviewRow, path: str) -> PreviewRow:
    """A CSP row on a path django-csp's EXCLUDE_URL_PREFIXES leaves out, marked not sent."""
    if row.header not in (CSP, CSP_REPORT_ONLY):
        return row
    if path.startswith(csp_exclude_prefixes(report_only=row.header == CSP_REPORT_ONLY)):
        return replace(row, note="not sent: the path is in EXCLUDE_URL_PREFIXES")
    return row
