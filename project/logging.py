"""Log filters: every line carries the request id, and no line carries a secret."""

from __future__ import annotations

import logging
import re

from project.middleware import current_request_id

_SECRET_PATTERNS = [
    # Authorization: Token abc / Bearer abc / Basic abc
    (re.compile(r"(?i)\b(token|bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 [redacted]"),
    # name=value pairs for cookies, passwords, keys and tokens (query strings, cookies, forms)
    (
        re.compile(
            r"(?i)\b(sessionid|csrftoken|csrfmiddlewaretoken|password\d?|passwd|secret|"
            r"api_key|token|access_token|refresh_token)(['\"]?\s*[=:]\s*['\"]?)[^\s&;,'\"}]+"
        ),
        r"\1\2[redacted]",
    ),
]


def redact(text: str) -> str:
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id.get()
        return True


class RedactSecretsFilter(logging.Filter):
    """Rewrites the formatted message so tokens, cookies and passwords never reach a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        # A request object attached by Django would print headers and cookies in some formatters.
        if hasattr(record, "request"):
            record.request = None
        return True
