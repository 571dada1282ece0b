"""Counters in the shared cache: portal sign-in lockout and link-request rate limits.

Both are keyed on the tenant and the normalised email address, whether or not an account
exists, so neither the lockout nor the rate limit tells anyone which addresses have accounts.
"""

from __future__ import annotations

import hashlib

from django.core.cache import cache

from core.emails import canonical_email
from core.policy import policy
from tenants.models import Tenant


def _account_key(tenant: Tenant, email: str) -> str:
    digest = hashlib.sha256(canonical_email(email).encode("utf-8", "surrogatepass")).hexdigest()
    return f"{tenant.pk}:{digest[:40]}"


def _bump(key: str, timeout: int) -> int:
    cache.add(key, 0, timeout)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add() and incr()
        cache.set(key, 1, timeout)
        return 1


# --- Sign-in lockout: 10 failures per account → 15 minutes ---------------------------------


def is_locked(tenant: Tenant, email: str) -> bool:
    return bool(cache.get(f"portal:locked:{_account_key(tenant, email)}"))


def register_failure(tenant: Tenant, email: str) -> bool:
    """Count one failed password, TOTP or recovery code. Returns True when this locks the account."""
    p = policy()
    window = p.portal_lockout_minutes * 60
    count = _bump(f"portal:fail:{_account_key(tenant, email)}", window)
    if count >= p.portal_lockout_failures:
        cache.set(f"portal:locked:{_account_key(tenant, email)}", 1, window)
        cache.delete(f"portal:fail:{_account_key(tenant, email)}")
        return True
    return False


def reset_failures(tenant: Tenant, email: str) -> None:
    cache.delete(f"portal:fail:{_account_key(tenant, email)}")


# --- Link requests: at most 1 a minute and 5 an hour per account ----------------------------


def link_request_allowed(tenant: Tenant, email: str) -> bool:
    """Count one recovery or magic-link request; False when it is over the limits.

    Recovery and magic-link requests share the counters: the policy limits requests per
    account, not per kind.
    """
    p = policy()
    key = _account_key(tenant, email)
    minute = f"portal:links:m:{key}"
    hour = f"portal:links:h:{key}"
    if (cache.get(minute) or 0) >= p.link_requests_per_minute:
        return False
    if (cache.get(hour) or 0) >= p.link_requests_per_hour:
        return False
    _bump(minute, 60)
    _bump(hour, 3600)
    return True
