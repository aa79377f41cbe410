"""Log filters: every line carries the request id, and no line carries a secret."""

from __future__ import annotations

import logging
import re

from project.middleware import current_request_id

_SECRET_PATTERNS = [
    # An Authorization header's credential, whatever its scheme (also as a META key).
    (
        re.compile(
            r"(?i)((?<![a-z])(?:proxy-)?authorization['\"]?\s*[:=]\s*['\"]?(?:[a-z]+\s+)?)"
            r"[^\s,;'\"}]+"
        ),
        r"\1[redacted]",
    ),
    # A credential after its scheme elsewhere ("Token 9944b0..."); it must hold a digit, so prose
    # such as "Token authentication failed" stays as it is.
    (
        re.compile(r"(?i)\b(token|bearer|basic)\s+(?=[A-Za-z._~+/=-]*[0-9])[A-Za-z0-9._~+/=-]{8,}"),
        r"\1 [redacted]",
    ),
    # name=value pairs for cookies, passwords, keys and tokens (query strings, cookies, forms)
    (
        re.compile(
            r"(?i)\b(sessionid|csrftoken|csrfmiddlewaretoken|password\d?|passwd|secret|"
            r"api_key|token|access_token|refresh_token)(['\"]?\s*[=:]\s*['\"]?)[^\s&;,'\"}]+"
        ),
        r"\1\2[redacted]",
    ),
]
_TRACEBACK_FORMATTER = logging.Formatter()


def redact(text: str) -> str:
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RequestIdFilter(logging.Filter):
    """Sets `record.request_id`: the current request's, or that of the request the record names.

    Django logs a 4xx/5xx response ("Not Found: /x") after the middleware has returned, so the
    context variable is already reset then; those records carry the request itself instead.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = getattr(getattr(record, "request", None), "request_id", None)
        record.request_id = request_id or current_request_id.get()
        return True


class RedactSecretsFilter(logging.Filter):
    """Rewrites the message and traceback so tokens, cookies and passwords never reach a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        _redact_traceback(record)
        # A request object attached by Django would print headers and cookies in some formatters.
        if hasattr(record, "request"):
            record.request = None
        return True


def _redact_traceback(record: logging.LogRecord) -> None:
    """An exception's message and the source lines shown with it can quote a secret too.

    Formatters reuse `record.exc_text` once set, so the redacted text formatted here is printed.
    """
    if record.exc_info and not record.exc_text:
        record.exc_text = _TRACEBACK_FORMATTER.formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
