"""Validation of admin-entered header values: every refusal names what is wrong and how to fix it.

Allowlists throughout: a directive, feature or header name we do not know is an error, not a pass.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError

MAX_HEADER_VALUE_BYTES = 8 * 1024
# All the header lines one rule emits, together: a proxy holds a response's headers in one buffer
# (nginx's proxy_buffer_size is 4 or 8 KiB by default) and answers 502 when they overflow it.
MAX_RULE_HEADERS_BYTES = 16 * 1024

# RFC 9110 section 5.6.2 token
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_VISIBLE_ASCII = re.compile(r"[\x20-\x7e]*")

# Headers a rule may never set or remove, by why: each group's reason ends the refusal message.
_FORBIDDEN_GROUPS: dict[str, tuple[frozenset[str], str]] = {
    "body": (
        frozenset(
            {
                "accept-ranges",
                "content-digest",
                "content-disposition",
                "content-encoding",
                "content-length",
                "content-location",
                "content-range",
                "content-type",
                "digest",
                "repr-digest",
                "trailer",
                "transfer-encoding",
            }
        ),
        "framing and body headers belong to the app and the server, not a rule",
    ),
    "caching": (
        frozenset({"age", "etag", "expires", "last-modified", "vary"}),
        "caching headers belong to the app and the server, not a rule "
        "(signed-in pages get the Cache-Control field)",
    ),
    "connection": (
        frozenset(
            {
                "alt-svc",
                "connection",
                "date",
                "host",
                "keep-alive",
                "proxy-authenticate",
                "proxy-authorization",
                "proxy-connection",
                "te",
                "upgrade",
                "x-request-id",
            }
        ),
        "connection and hop-by-hop headers belong to the server and the proxy",
    ),
    "state": (
        frozenset({"clear-site-data", "cookie", "set-cookie", "set-cookie2", "www-authenticate"}),
        "cookies, sign-in and stored site data belong to the app",
    ),
    "navigation": (
        frozenset({"link", "location", "refresh"}),
        "it sends the browser elsewhere or makes it load other resources; that belongs to the app",
    ),
    "pinning": (
        frozenset({"public-key-pins", "public-key-pins-report-only"}),
        "key pinning is obsolete and a wrong pin locks users out of the site",
    ),
    "proxy": (
        frozenset({"x-lighttpd-send-file", "x-litespeed-location", "x-sendfile"}),
        "it makes the proxy or server serve a file or change how it answers",
    ),
}
# Whole families, by prefix (lower case), with the same kind of reason.
_FORBIDDEN_PREFIXES: dict[str, str] = {
    "access-control-": "CORS opens the site to other origins; it belongs to the app's views",
    "x-accel-": "it makes the proxy or server serve a file or change how it answers",
}
FORBIDDEN_HEADERS = frozenset().union(*(names for names, _why in _FORBIDDEN_GROUPS.values()))

# Headers a rule sets through its own fields; a custom header or a removal may not touch them.
MANAGED_HEADERS = frozenset(
    {
        "content-security-policy",
        "content-security-policy-report-only",
        "strict-transport-security",
        "x-frame-options",
        "referrer-policy",
        "permissions-policy",
        "permissions-policy-report-only",
        "cross-origin-opener-policy",
        "cross-origin-embedder-policy",
        "cross-origin-resource-policy",
        "x-content-type-options",
        "cache-control",
        "x-permitted-cross-domain-policies",
        "reporting-endpoints",
    }
)

CSP_FETCH_DIRECTIVES = frozenset(
    {
        "default-src",
        "child-src",
        "connect-src",
        "font-src",
        "frame-src",
        "img-src",
        "manifest-src",
        "media-src",
        "object-src",
        "script-src",
        "script-src-elem",
        "script-src-attr",
        "style-src",
        "style-src-elem",
        "style-src-attr",
        "worker-src",
        "fenced-frame-src",
    }
)
CSP_SOURCE_LIST_DIRECTIVES = CSP_FETCH_DIRECTIVES | {"base-uri", "form-action", "frame-ancestors"}
CSP_FLAG_DIRECTIVES = frozenset({"upgrade-insecure-requests"})
CSP_OTHER_DIRECTIVES = frozenset(
    {"sandbox", "report-uri", "report-to", "require-trusted-types-for", "trusted-types", "webrtc"}
)
CSP_DIRECTIVES = CSP_SOURCE_LIST_DIRECTIVES | CSP_FLAG_DIRECTIVES | CSP_OTHER_DIRECTIVES

CSP_KEYWORDS = frozenset(
    {
        "'self'",
        "'none'",
        "'unsafe-inline'",
        "'unsafe-eval'",
        "'strict-dynamic'",
        "'unsafe-hashes'",
        "'report-sample'",
        "'wasm-unsafe-eval'",
        "'inline-speculation-rules'",
    }
)
# A base64 digest of the algorithm's exact length: 44, 64 or 88 characters with padding. The
# algorithm name is matched case-insensitively, as CSP does ('SHA256-...' is valid).
_CSP_HASH = re.compile(
    r"'(?:(?i:sha256)-[A-Za-z0-9+/_-]{43}=|(?i:sha384)-[A-Za-z0-9+/_-]{64}"
    r"|(?i:sha512)-[A-Za-z0-9+/_-]{86}==)'"
)
_CSP_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*:")
_CSP_HOST = re.compile(
    r"(?:[a-z][a-z0-9+.-]*://)?(?:\*|(?:\*\.)?[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
    r"(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*)(?::(?:\d{1,5}|\*))?(?:/[^\s;,']*)?",
    re.IGNORECASE,
)
CSP_SANDBOX_TOKENS = frozenset(
    {
        "allow-downloads",
        "allow-forms",
        "allow-modals",
        "allow-orientation-lock",
        "allow-pointer-lock",
        "allow-popups",
        "allow-popups-to-escape-sandbox",
        "allow-presentation",
        "allow-same-origin",
        "allow-scripts",
        "allow-storage-access-by-user-activation",
        "allow-top-navigation",
        "allow-top-navigation-by-user-activation",
        "allow-top-navigation-to-custom-protocols",
    }
)

PERMISSIONS_POLICY_FEATURES = frozenset(
    {
        "accelerometer",
        "ambient-light-sensor",
        "attribution-reporting",
        "autoplay",
        "bluetooth",
        "browsing-topics",
        "camera",
        "compute-pressure",
        "display-capture",
        "document-domain",
        "encrypted-media",
        "fullscreen",
        "gamepad",
        "geolocation",
        "gyroscope",
        "hid",
        "identity-credentials-get",
        "idle-detection",
        "local-fonts",
        "magnetometer",
        "microphone",
        "midi",
        "otp-credentials",
        "payment",
        "picture-in-picture",
        "publickey-credentials-create",
        "publickey-credentials-get",
        "screen-wake-lock",
        "serial",
        "storage-access",
        "usb",
        "web-share",
        "window-management",
        "xr-spatial-tracking",
    }
)


def validate_header_name(name: str) -> None:
    if not isinstance(name, str) or not _TOKEN.fullmatch(name) or len(name) > 100:
        raise ValidationError(
            f"{name!r} is not a valid header name: use letters, digits and - (at most 100).",
            code="header_name",
        )
    if why := _forbidden_reason(name.lower()):
        raise ValidationError(
            f"{name} cannot be set or removed by a rule: {why}.", code="header_forbidden"
        )


def _forbidden_reason(lowered: str) -> str | None:
    for names, why in _FORBIDDEN_GROUPS.values():
        if lowered in names:
            return why
    for prefix, why in _FORBIDDEN_PREFIXES.items():
        if lowered.startswith(prefix):
            return why
    return None


def validate_unmanaged_header_name(name: str) -> None:
    """A custom or removed header: a valid name that no rule field already governs."""
    validate_header_name(name)
    if name.lower() in MANAGED_HEADERS:
        raise ValidationError(
            f"{name} is a security header with its own field in this rule; set it there.",
            code="header_managed",
        )


def validate_header_value(value: str, *, label: str = "header value") -> None:
    if not isinstance(value, str):
        raise ValidationError(f"The {label} must be text.", code="header_value")
    if not _VISIBLE_ASCII.fullmatch(value):
        raise ValidationError(
            f"The {label} may contain only visible ASCII characters and spaces "
            "(no line breaks, tabs, NUL or non-ASCII).",
            code="header_value",
        )
    if len(value.encode()) > MAX_HEADER_VALUE_BYTES:
        raise ValidationError(f"The {label} is longer than 8 KiB.", code="header_value")
    if value != value.strip():
        raise ValidationError(
            f"The {label} must not start or end with a space.", code="header_value"
        )


# Cache-Control for signed-in pages: what keeps a user's page out of shared caches, nothing that
# lets one store it. Directive names compare case-insensitively (RFC 9111 section 5.2).
CACHE_CONTROL_FLAGS = frozenset(
    {"no-store", "no-cache", "private", "must-revalidate", "immutable", "no-transform"}
)
CACHE_CONTROL_SECONDS = frozenset({"max-age", "stale-while-revalidate", "stale-if-error"})
_CACHE_CONTROL_SHARED = frozenset({"public", "s-maxage"})
_MAX_DELTA_SECONDS = 2**31  # RFC 9111 section 1.2.2: larger values mean "this many"


def validate_cache_control(value: str) -> None:
    validate_header_value(value, label="Cache-Control")
    if not value:
        return
    directives = [part.strip() for part in value.split(",")]
    errors = [m for part in directives if (m := _cache_directive_error(part))]
    names = [part.partition("=")[0].lower() for part in directives if part]
    if len(set(names)) != len(names):
        errors.append("Cache-Control: a directive is listed twice.")
    if errors:
        raise ValidationError(errors, code="cache_control")


def _cache_directive_error(directive: str) -> str | None:
    if not directive:
        return "Cache-Control: an item between commas is empty."
    name, has_value, seconds = directive.partition("=")
    lowered = name.lower()
    if lowered in _CACHE_CONTROL_SHARED:
        return (
            f"Cache-Control: {name} lets shared caches keep the page, and this header is for "
            "signed-in pages; use private or no-store."
        )
    if lowered in CACHE_CONTROL_FLAGS and not has_value:
        return None
    if lowered in CACHE_CONTROL_SECONDS:
        if re.fullmatch(r"[0-9]{1,10}", seconds) and int(seconds) <= _MAX_DELTA_SECONDS:
            return None
        return f"Cache-Control: {name} takes a number of seconds, e.g. {lowered}=0."
    allowed = [*sorted(CACHE_CONTROL_FLAGS), *(f"{n}=N" for n in sorted(CACHE_CONTROL_SECONDS))]
    return f"Cache-Control: {directive!r} is not allowed here; use {', '.join(allowed)}."


def header_lines_bytes(headers: dict[str, str]) -> int:
    """The size of header lines as sent: name, ": ", value and CRLF for each."""
    return sum(len(name.encode()) + len(value.encode()) + 4 for name, value in headers.items())


def _check_csp_source(directive: str, source: str) -> str | None:
    """Return an error message for one source expression, or None when it is valid."""
    if not isinstance(source, str) or not source:
        return f"{directive}: every source must be non-empty text."
    if re.search(r"[\s;,]", source):
        return f"{directive}: {source!r} must be a single source (no spaces, ';' or ',')."
    if not _VISIBLE_ASCII.fullmatch(source):
        return f"{directive}: {source!r} may contain only visible ASCII characters."
    lowered = source.lower()
    if lowered in CSP_KEYWORDS or _CSP_HASH.fullmatch(source):
        return None
    if source.startswith("'"):
        return f"{directive}: {source} is not a CSP keyword or hash."
    if f"'{lowered}'" in CSP_KEYWORDS:
        return f"{directive}: the keyword {source} must be quoted: '{lowered}'."
    if _CSP_SCHEME.fullmatch(source):
        return None
    if _CSP_HOST.fullmatch(source) and _port_ok(source):
        return None
    return f"{directive}: {source!r} is not a valid host, scheme, keyword or hash."


def _port_ok(source: str) -> bool:
    port = re.search(r"^(?:[a-z][a-z0-9+.-]*://)?[^/:]+:(\d+)", source, re.IGNORECASE)
    return port is None or 0 < int(port.group(1)) <= 65535


def _nonce_errors(directive: str, values: list) -> list[str]:
    """A stored nonce is no nonce: it is the same on every response, so an attacker reads it."""
    if any(isinstance(v, str) and v.lower().startswith("'nonce-") for v in values):
        return [
            f"{directive}: do not store a nonce; nonces are made per request "
            "(templates read request.csp_nonce)."
        ]
    return []


# Trusted Types policy names (CSP tt-policy-name) and the directive's keywords.
_TT_POLICY_NAME = re.compile(r"[A-Za-z0-9\-#=_/@.%]+")
_TT_KEYWORDS = frozenset({"'allow-duplicates'", "'none'"})


def _trusted_types_errors(values: list) -> list[str]:
    errors = [
        f"trusted-types: {v!r} must be a policy name (letters, digits and -#=_/@.%), "
        "'allow-duplicates' or 'none'."
        for v in values
        if not isinstance(v, str) or not (v.lower() in _TT_KEYWORDS or _TT_POLICY_NAME.fullmatch(v))
    ]
    if "'none'" in [str(v).lower() for v in values] and len(values) > 1:
        errors.append("trusted-types: 'none' must be the only value.")
    return errors


def _require_trusted_types_errors(values: list) -> list[str]:
    if len(values) == 1 and isinstance(values[0], str) and values[0].lower() == "'script'":
        return []
    return ["require-trusted-types-for: give exactly 'script' (the only sink group)."]


def _csp_directive_errors(directive: str, values: object) -> list[str]:
    if not isinstance(values, list):
        return [f"{directive}: give a list of sources."]
    if not all(isinstance(v, str) for v in values):
        return [f"{directive}: each source is text, such as 'self' or https://cdn.example.com."]
    if nonce := _nonce_errors(directive, values):
        return nonce
    if directive in CSP_FLAG_DIRECTIVES:
        return [] if values == [] else [f"{directive} takes no values."]
    if directive == "sandbox":
        bad = [v for v in values if v not in CSP_SANDBOX_TOKENS]
        return [f"sandbox: {v!r} is not a sandbox flag." for v in bad]
    if directive == "report-uri":
        return [m for v in values if (m := _url_error(directive, v, allow_relative=True))]
    if directive == "webrtc":
        return [] if values in (["'allow'"], ["'block'"]) else ["webrtc: give 'allow' or 'block'."]
    if directive == "report-to":
        return [
            f"report-to: {v!r} must be a Reporting-Endpoints name."
            for v in values
            if not isinstance(v, str) or not re.fullmatch(r"[a-z][a-z0-9_-]{0,63}", v)
        ] or ([] if len(values) == 1 else ["report-to: give exactly one endpoint name."])
    if directive == "trusted-types":
        return _trusted_types_errors(values)
    if directive == "require-trusted-types-for":
        return _require_trusted_types_errors(values)
    if not values:
        return [f"{directive}: give at least one source, or 'none'."]
    errors = [m for v in values if (m := _check_csp_source(directive, v))]
    if "'none'" in [str(v).lower() for v in values] and len(values) > 1:
        errors.append(f"{directive}: 'none' must be the only source.")
    return errors


def validate_csp(directives: object) -> None:
    if not isinstance(directives, dict):
        raise ValidationError("CSP must be a mapping of directive names to lists of sources.")
    errors = []
    for name, values in directives.items():
        if name not in CSP_DIRECTIVES:
            errors.append(f"{name!r} is not a CSP directive.")
            continue
        errors.extend(_csp_directive_errors(name, values))
    if errors:
        raise ValidationError(errors, code="csp")


# Characters that would end a URL inside a header's syntax (CSP lists, structured fields).
_URL_BREAKERS = re.compile(r"[\s;,'\"\\]")


def _url_error(label: str, value: object, *, allow_relative: bool = False) -> str | None:
    if not isinstance(value, str) or not _VISIBLE_ASCII.fullmatch(value) or not value:
        return f"{label}: {value!r} is not a valid URL."
    if _URL_BREAKERS.search(value):
        return f"{label}: {value!r} may not contain spaces, quotes, backslashes, ';' or ','."
    if allow_relative and value.startswith("/") and not value.startswith("//"):
        return None
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.netloc:
        return f"{label}: {value!r} must be an https:// URL" + (
            " or a path starting with /." if allow_relative else "."
        )
    return None


def validate_permissions_policy(features: object) -> None:
    if not isinstance(features, dict):
        raise ValidationError("Permissions-Policy must map feature names to allowlists.")
    errors = []
    for feature, allowlist in features.items():
        if feature not in PERMISSIONS_POLICY_FEATURES:
            errors.append(f"{feature!r} is not a known Permissions-Policy feature.")
        elif not isinstance(allowlist, list):
            errors.append(f"{feature}: give a list (empty to deny everywhere).")
        else:
            if "*" in allowlist and len(allowlist) > 1:
                errors.append(f"{feature}: * allows every origin; list nothing beside it.")
            errors.extend(m for item in allowlist if (m := _allowlist_item_error(feature, item)))
    if errors:
        raise ValidationError(errors, code="permissions_policy")


def _allowlist_item_error(feature: str, item: object) -> str | None:
    if item in ("*", "self") or _is_origin(item):
        return None
    if item == "src":
        return (
            f"{feature}: src only works in an iframe's allow attribute, not in this header; "
            "use self or an https:// origin."
        )
    return f"{feature}: {item!r} must be *, self or an https:// origin."


def _is_origin(value: object) -> bool:
    """Exactly https://host[:port]: no path, query, fragment or user."""
    if not isinstance(value, str) or _url_error("", value) is not None:
        return False
    parts = urlsplit(value)
    try:
        port_ok = parts.port is None or 0 < parts.port <= 65535
    except ValueError:
        return False
    return (
        parts.scheme == "https"
        and bool(parts.hostname)
        and port_ok
        and parts.path in ("", "/")
        and not (parts.query or parts.fragment or parts.username or "@" in parts.netloc)
    )


def validate_reporting_endpoints(endpoints: object) -> None:
    if not isinstance(endpoints, dict):
        raise ValidationError("Reporting endpoints must map names to https:// URLs.")
    errors = []
    for name, url in endpoints.items():
        if not re.fullmatch(r"[a-z][a-z0-9_-]{0,63}", str(name)):
            errors.append(f"{name!r}: endpoint names are lower-case letters, digits, - and _.")
        elif message := _url_error(name, url, allow_relative=True):
            errors.append(message)
    if errors:
        raise ValidationError(errors, code="reporting_endpoints")


def validate_custom_headers(headers: object) -> None:
    if not isinstance(headers, dict):
        raise ValidationError("Custom headers must map header names to values.")
    errors = []
    for name, value in headers.items():
        try:
            validate_unmanaged_header_name(name)
            validate_header_value(value, label=f"value of {name}")
        except ValidationError as exc:
            errors.extend(exc.messages)
            continue
        if value == "":
            errors.append(
                f"{name} has no value; give one, or list the header under headers to remove."
            )
    lowered = [str(name).lower() for name in headers]
    if len(set(lowered)) != len(lowered):
        errors.append("A header is listed twice (header names ignore letter case).")
    if errors:
        raise ValidationError(errors, code="custom_headers")


def validate_remove_headers(names: object) -> None:
    if not isinstance(names, list):
        raise ValidationError("Headers to remove must be a list of header names.")
    errors = []
    for name in names:
        try:
            validate_unmanaged_header_name(name)
        except ValidationError as exc:
            errors.extend(exc.messages)
    if errors:
        raise ValidationError(errors, code="remove_headers")
