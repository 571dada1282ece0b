"""The one text rule: what a short text typed by a person may contain, and how long it may be.

Refused everywhere (names, reasons, tenant names, roles, subjects): control characters (tab,
line feed and carriage return only where ``multiline``), lone surrogates, line and paragraph
separators, and the direction overrides, isolates and marks of "Trojan Source" (plus the
invisible byte-order mark).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from core.errors import Invalid

NAME_MAX_LENGTH = 150  # a person's name (staff and app users)
REASON_MAX_LENGTH = 500  # a ban or impersonation reason
TENANT_NAME_MAX_LENGTH = 200

BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
INVISIBLE = frozenset("\ufeff")
# What no database column (PostgreSQL text and jsonb) nor UTF-8 page can hold, whatever the text
# is for: NUL and lone surrogates. Free-form values (metadata, audit payloads) refuse or replace
# only these.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_MULTILINE_OK = frozenset("\n\r\t")
_REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})


def forbidden_char(value: str, *, multiline: bool = False) -> str | None:
    """The first character the rule refuses, or ``None``."""
    for ch in value:
        if ch in BIDI_CONTROLS or ch in INVISIBLE:
            return ch
        if unicodedata.category(ch) in _REFUSED_CATEGORIES and not (multiline and ch in _MULTILINE_OK):
            return ch
    return None


def has_forbidden_chars(value: str, *, multiline: bool = False) -> bool:
    return forbidden_char(value, multiline=multiline) is not None


def without_forbidden_chars(value: str, *, multiline: bool = False) -> str:
    """``value`` minus every character the rule refuses: what may be echoed back of a refused
    input (a form shown again), so a direction override never reaches a page raw."""
    if not has_forbidden_chars(value, multiline=multiline):
        return value
    return "".join(ch for ch in value if not has_forbidden_chars(ch, multiline=multiline))


def clean_text(
    value: Any, *, label: str, max_length: int, field: str | None = None, required: bool = False,
    multiline: bool = False, collapse_spaces: bool = False,
) -> str:
    """``value`` stripped (and with runs of spaces collapsed when asked), or ``Invalid``."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise Invalid(f"{label} must be text.", code="not_text", field=field)
    text = " ".join(value.split()) if collapse_spaces else value.strip()
    if required and not text:
        raise Invalid(f"Enter {label.lower()}.", code="required", field=field)
    if len(text) > max_length:
        raise Invalid(
            f"{label} has at most {max_length:,} characters ({len(text):,} given).",
            code="too_long", field=field,
        )
    if has_forbidden_chars(text, multiline=multiline):
        raise Invalid(
            f"{label} cannot contain control characters or text-direction overrides.",
            code="forbidden_characters", field=field,
        )
    return text


def search_term(value: object, *, max_length: int = 100) -> str:
    """A typed search term as a query can use it: stripped, at most ``max_length`` characters,
    without what no column can hold (a NUL byte is a database error on PostgreSQL)."""
    return UNSTORABLE.sub("", str(value or "")).strip()[:max_length]
