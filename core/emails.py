"""The one canonical form of an email address, for storage, uniqueness, lookup and counters,
and the one syntax check of an address typed by a person."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from core.errors import Invalid
from core.text import has_forbidden_chars

EMAIL_MAX_LENGTH = 254


def canonical_email(value: object) -> str:
    """Stripped and case-folded: the form every lookup, uniqueness check and counter keys on."""
    return str(value or "").strip().lower()[:EMAIL_MAX_LENGTH]


def same_email(a: str, b: str) -> bool:
    return canonical_email(a) == canonical_email(b)


def clean_email(value: object) -> str:
    """The canonical form of a syntactically valid address, or ``Invalid`` (field ``email``)."""
    if not isinstance(value, str) or not value.strip():
        raise Invalid("Enter an email address.", code="required", field="email")
    raw = value.strip()
    if len(raw) > EMAIL_MAX_LENGTH:
        raise Invalid(f"An email address has at most {EMAIL_MAX_LENGTH} characters.",
                      code="too_long", field="email")
    if has_forbidden_chars(raw) or any(c.isspace() for c in raw):
        raise Invalid("Enter a valid email address.", code="invalid_email", field="email")
    try:
        validate_email(raw)
    except ValidationError:
        raise Invalid("Enter a valid email address.", code="invalid_email", field="email") from None
    return canonical_email(raw)
