"""Per-tenant settings: the rules the users console and the portal obey for one tenant.

Stored as JSON on ``Tenant.settings``; read through ``tenant_settings(tenant)``, which fills
defaults and clamps link lifetimes to the security policy's bounds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from core.policy import policy
from tenants.models import Tenant

MAX_ROLES = 20
MAX_REDIRECT_URLS = 50
REDIRECT_URL_MAX = 500
ROLE_RE = r"^[a-z][a-z0-9_-]{0,49}$"


@dataclasses.dataclass(frozen=True)
class TenantSettings:
    roles: tuple[str, ...] = ("user", "admin")
    protected_roles: tuple[str, ...] = ("admin",)
    default_role: str = "user"
    password_min_length: int = 10
    require_mfa: bool = False
    invitation_hours: int = 72
    recovery_minutes: int = 60
    magic_link_minutes: int = 10
    allowed_email_domains: tuple[str, ...] = ()  # empty: any domain may be invited
    sender_name: str = ""
    # Where a link may send its user after use (GoTrue's "redirect URLs" allow-list): exact URLs,
    # or ``https://host/path*`` prefixes. Empty: links always lead to the tenant's portal.
    redirect_urls: tuple[str, ...] = ()

    @property
    def invitation_lifetime(self) -> timedelta:
        return timedelta(hours=self.invitation_hours)

    @property
    def recovery_lifetime(self) -> timedelta:
        return timedelta(minutes=self.recovery_minutes)

    @property
    def magic_link_lifetime(self) -> timedelta:
        return timedelta(minutes=self.magic_link_minutes)

    def lifetime(self, purpose: str) -> timedelta:
        return {
            "invite": self.invitation_lifetime,
            "recovery": self.recovery_lifetime,
            "magic_link": self.magic_link_lifetime,
            "email_change": self.recovery_lifetime,
        }[purpose]

    def email_domain_allowed(self, email: str) -> bool:
        if not self.allowed_email_domains:
            return True
        domain = email.rsplit("@", 1)[-1].lower()
        return domain in self.allowed_email_domains

    def redirect_allowed(self, url: str | None) -> str:
        """``url`` when the allow-list holds it (exactly, or under a ``*`` prefix), else ``""``:
        GoTrue's rule, the caller falls back to the site URL. Only absolute http(s) URLs with a
        host, no user part, no backslash or control character ever pass (open-redirect safe)."""
        url = (url or "").strip()
        if not url or not redirect_url_shape_ok(url):
            return ""
        for allowed in self.redirect_urls:
            if allowed.endswith("*") and url.startswith(allowed[:-1]) or url == allowed:
                return url
        return ""

    def as_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TenantSettings:
        """The inverse of ``as_json`` (lists become tuples); the values are not checked here."""
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**values)


def redirect_url_shape_ok(url: str) -> bool:
    """An absolute http(s) URL with a host and no user part, backslash, space or control
    character, at most ``REDIRECT_URL_MAX`` long."""
    if len(url) > REDIRECT_URL_MAX or any(ch in "\\ " or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        return False
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and "@" not in parts.netloc


def redirect_pattern_error(pattern: str) -> str:
    """Why ``pattern`` cannot be on the allow-list, or ``""``. A ``*`` may only end it, after the
    host and a ``/``: a prefix never leaves its host open (``https://app.example*`` would admit
    ``https://app.example.evil``)."""
    star = pattern.endswith("*")
    base = pattern[:-1] if star else pattern
    if "*" in base:
        return "a * may only end the URL"
    if not redirect_url_shape_ok(base):
        return "not an absolute http(s) URL"
    if star and not urlsplit(base).path.startswith("/"):
        return "a prefix ends after the host's /, like https://app.example.com/*"
    return ""


def lifetime_bounds() -> dict[str, tuple[int, int]]:
    """(min, max) of each lifetime: a tenant may shorten the policy's lifetimes, never lengthen."""
    p = policy()
    return {
        "invitation_hours": (1, p.invitation_hours),
        "recovery_minutes": (5, p.recovery_minutes),
        "magic_link_minutes": (1, p.magic_link_minutes),
        "password_min_length": (8, 128),
    }


def tenant_settings(tenant: Tenant) -> TenantSettings:
    raw = tenant.settings if isinstance(tenant.settings, dict) else {}
    p = policy()
    defaults = TenantSettings(
        invitation_hours=p.invitation_hours,
        recovery_minutes=p.recovery_minutes,
        magic_link_minutes=p.magic_link_minutes,
    )
    values: dict[str, Any] = {}
    for f in dataclasses.fields(TenantSettings):
        value = raw.get(f.name, getattr(defaults, f.name))
        if isinstance(getattr(defaults, f.name), tuple):
            value = tuple(value) if isinstance(value, list | tuple) else getattr(defaults, f.name)
        values[f.name] = value
    for name, (low, high) in lifetime_bounds().items():
        try:
            values[name] = min(max(int(values[name]), low), high)
        except (TypeError, ValueError):
            values[name] = getattr(defaults, name)
    if values["default_role"] not in values["roles"]:
        values["default_role"] = values["roles"][0] if values["roles"] else "user"
    return TenantSettings(**values)
