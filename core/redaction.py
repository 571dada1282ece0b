"""Live link tokens out of text that is kept: log lines and sent mail.

A token travels in a URL path (``/p/<slug>/recover/<token>/``, ``/staff/accept/<token>/``) or a
query (``?token=...``). ``redact_tokens`` blanks it in any text; ``TokenMaskFilter`` does it to
every log record that passes a handler it is attached to (settings attach it to every handler:
``django.request``'s "Method Not Allowed (HEAD): /p/acme/recover/<token>/" and runserver's
request lines included; gunicorn's access log has its own logger, ``config.gunicorn_logger``).
"""

from __future__ import annotations

import logging
import re

REMOVED = "[removed]"
# The link routes: whatever follows them is a token (16+ characters of URL-safe base64).
_LINK_PATH = re.compile(r"(/(?:accept|recover|magic|confirm|verify|email-change)/)[A-Za-z0-9_\-]{16,}")
# Any other path segment as long as a 256-bit token (43 characters); UUIDs (36) and slugs stay.
_LONG_SEGMENT = re.compile(r"(/)[A-Za-z0-9_\-]{40,}(?=/|\?|\s|\"|'|$)")
_QUERY = re.compile(r"((?:^|[?&\s])(?:token|token_hash|code)=)[^&\s\"'#]+", re.IGNORECASE)


def redact_tokens(text: str) -> str:
    """``text`` with every link token replaced by ``[removed]``."""
    if "/" not in text and "=" not in text:
        return text
    text = _LINK_PATH.sub(rf"\1{REMOVED}", text)
    text = _LONG_SEGMENT.sub(rf"\1{REMOVED}", text)
    return _QUERY.sub(rf"\1{REMOVED}", text)


class TokenMaskFilter(logging.Filter):
    """Rewrites a record's message with its tokens blanked (never drops a record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string is logging's problem, not ours
            return True
        masked = redact_tokens(message)
        if masked != message:
            record.msg, record.args = masked, ()
        return True
