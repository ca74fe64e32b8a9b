"""Credentials out of what the service shows: responses, job errors and log lines.

A URL's ``user:password@`` (the LLM base URL, the Redis URL, the database URL) and API tokens (``Bearer ...``,
``mck_...``) can reach an exception's text, and from there an error response, a stored job error or a log
line. ``redact`` masks them; ``install_log_redaction`` applies it to every log record as it is made, whatever
handler later writes it (uvicorn's, a file, pytest's capture).
"""

from __future__ import annotations

import logging
from typing import Any

import re2

MASK = "***"
# RE2: linear whatever the text (a run of "a://b:" must not make this quadratic).
_SECRETS = re2.compile(
    r"(?i)(?P<url>[a-z][a-z0-9+.-]*://)[^\s/@]*:[^\s/@]*@"  # scheme://user:password@
    r"|(?P<bearer>bearer\s+)[^\s,;\"']+"  # Authorization: Bearer <token>
    r"|mck_[A-Za-z0-9_-]+"  # an API key
)


def _mask(m: Any) -> str:
    if m.group("url"):
        return f"{m.group('url')}{MASK}@"
    if m.group("bearer"):
        return f"{m.group('bearer')}{MASK}"
    return "mck_" + MASK


def redact(text: str) -> str:
    """``text`` with URL credentials and API tokens masked."""
    return _SECRETS.sub(_mask, text) if _SECRETS.search(text) else text


def redact_json(value: Any) -> Any:
    """``redact`` on every string of a JSON-like value."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_json(v) for v in value]
    return value


def install_log_redaction() -> None:
    """Make every log record with its message and traceback already redacted (idempotent)."""
    make = logging.getLogRecordFactory()
    if getattr(make, "redacting", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports it when the record is written
            return record
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return record

    factory.redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
