"""The one canonical form of an email address, for storage, uniqueness, lookup and counters,
and the one syntax check of an address typed by a person.

Policy (README, "Email addresses"): an address is compared, stored and counted only in its
canonical form: NFKC, then Unicode case folding (``ſ`` → ``s``, ``ß`` → ``ss``, full-width and
ligature letters → ASCII), then the dotless ``ı`` → ``i`` (the one letter whose upper case is ASCII
that case folding keeps), and the domain as its IDNA A-label (``münchen.de`` →
``xn--mnchen-3ya.de``). Lookups are exact matches on that form, never ``iexact`` / ``UPPER()``,
so no database's case rules can make two spellings meet. A new address whose local part is still
not ASCII after this is refused (no SMTPUTF8 mailboxes): every stored address is ASCII.
"""

from __future__ import annotations

import unicodedata

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from core.errors import Invalid
from core.text import has_forbidden_chars

EMAIL_MAX_LENGTH = 254

# Letters whose upper case is ASCII but which case folding leaves alone (PostgreSQL's UPPER() and
# Python's upper() both turn U+0131 into "I").
_FOLD_EXTRA = str.maketrans({"\u0131": "i"})


def _fold(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).casefold().translate(_FOLD_EXTRA)
    return unicodedata.normalize("NFKC", folded)


def _ascii_domain(domain: str) -> str:
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:  # not a valid IDN: left as folded text (clean_email refuses it)
        return domain


def _canonical(value: object) -> str:
    text = _fold(str(value or "").strip())
    local, at, domain = text.rpartition("@")
    return f"{local}@{_ascii_domain(domain)}" if at else text


def canonical_email(value: object) -> str:
    """The form every lookup, uniqueness check and counter keys on (total: any input gives a
    string, so a lookup or a counter never fails on odd input)."""
    return _canonical(value)[:EMAIL_MAX_LENGTH]


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
    email = _canonical(raw)
    if not email.isascii():
        raise Invalid("Write the address in ASCII letters: other letters are not accepted before "
                      "the @.", code="non_ascii_email", field="email")
    if len(email) > EMAIL_MAX_LENGTH:
        raise Invalid(f"An email address has at most {EMAIL_MAX_LENGTH} characters.",
                      code="too_long", field="email")
    try:
        validate_email(email)
    except ValidationError:
        raise Invalid("Enter a valid email address.", code="invalid_email", field="email") from None
    return email
