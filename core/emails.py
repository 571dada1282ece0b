"""The one canonical form of an email address, for storage, uniqueness, lookup and counters."""

from __future__ import annotations

EMAIL_MAX_LENGTH = 254


def canonical_email(value: object) -> str:
    """Stripped and case-folded: the form every lookup, uniqueness check and counter keys on."""
    return str(value or "").strip().lower()[:EMAIL_MAX_LENGTH]


def same_email(a: str, b: str) -> bool:
    return canonical_email(a) == canonical_email(b)
