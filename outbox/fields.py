"""A text column encrypted at rest: the outbox body, which holds live link tokens until sent.

Fernet (AES-128-CBC with an HMAC-SHA256, from ``cryptography``) under a key derived from
``SECRET_KEY`` (``salted_hmac`` with a purpose of its own, so the key is used for nothing else);
``SECRET_KEY_FALLBACKS`` still decrypt, so a key rotation does not lose queued mail. Python code
sees plain text; the database (and its backups) sees only ``enc1:`` ciphertext. A value without
the prefix (a row written before encryption) reads as it is.
"""

from __future__ import annotations

import base64
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models
from django.utils.crypto import salted_hmac

PREFIX = "enc1:"
_PURPOSE = "outbox.fields.EncryptedTextField"


def _fernet_key(secret: str) -> bytes:
    digest = salted_hmac(_PURPOSE, "fernet-key", secret=secret, algorithm="sha256").digest()
    return base64.urlsafe_b64encode(digest)


@lru_cache(maxsize=4)
def _fernet(secret: str, fallbacks: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(_fernet_key(s)) for s in (secret, *fallbacks)])


def fernet() -> MultiFernet:
    return _fernet(settings.SECRET_KEY, tuple(getattr(settings, "SECRET_KEY_FALLBACKS", ()) or ()))


def encrypt(text: str) -> str:
    return PREFIX + fernet().encrypt(text.encode("utf-8", "surrogatepass")).decode("ascii")


def decrypt(stored: str) -> str:
    if not stored.startswith(PREFIX):
        return stored
    try:
        return fernet().decrypt(stored[len(PREFIX):].encode("ascii")).decode("utf-8", "surrogatepass")
    except InvalidToken:
        # Written under a key that is neither SECRET_KEY nor a fallback: unreadable, not a crash.
        return ""


class EncryptedTextField(models.TextField):
    """A ``TextField`` stored encrypted (see the module). Not searchable, by design."""

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        return decrypt(value) if isinstance(value, str) else value

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if isinstance(value, str) and value:
            return encrypt(value)
        return value
