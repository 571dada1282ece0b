"""The one error family. Services raise these; each transport maps them once.

Every error has a stable machine ``code`` (``protected_user``, ``email_taken``, ``last_admin``...)
and a human ``message`` meant for the person at the screen. ``field`` (or ``fields``) names the
input it is about, so a form can mark it. The console maps them in ``console.errors`` (messages,
form errors, status pages); the API maps them to JSON with the same ``code``.

- ``NotFound``: no such thing here (unknown and foreign ids alike).                     404
- ``Refused``: the actor may not do this (role, protected user, self-action, last admin). 403
- ``Invalid``: the input is wrong; nothing changed.                                     400
- ``Conflict``: the input is fine but the current state does not allow it
  (already exists, already banned, not invited, link used).                            409
- ``Unavailable``: a database this needs does not answer (a tenant's server is down);
  nothing changed, try again later.                                                    503
"""

from __future__ import annotations

from typing import Any, ClassVar


class ServiceError(Exception):
    """Base of the family; catch it where any refusal is reported the same way."""

    status: ClassVar[int] = 400
    default_code: ClassVar[str] = "error"

    def __init__(
        self, message: str, *, code: str | None = None, field: str | None = None,
        fields: dict[str, list[str]] | None = None, **facts: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.field = field
        self.fields: dict[str, list[str]] = dict(fields or {})
        if field and field not in self.fields:
            self.fields[field] = [message]
        self.facts = facts  # machine details for audit or the API (never secrets)

    def __str__(self) -> str:
        return self.message

    @property
    def messages(self) -> list[str]:
        """Every message, the field ones included (for a banner)."""
        if not self.fields:
            return [self.message]
        return [m for ms in self.fields.values() for m in ms]


class NotFound(ServiceError):
    status = 404
    default_code = "not_found"


class Refused(ServiceError):
    status = 403
    default_code = "refused"


class Invalid(ServiceError):
    status = 400
    default_code = "invalid"


class Conflict(ServiceError):
    status = 409
    default_code = "conflict"


class Unavailable(ServiceError):
    status = 503
    default_code = "unavailable"
