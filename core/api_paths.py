"""Which request paths belong to the admin API (``/api/v1/`` and ``/t/<slug>/auth/v1/``).

The console's middleware lets them through untouched (no staff session, no sign-in redirect,
no CSRF page): API callers authenticate with keys in headers, never with cookies.
"""

from __future__ import annotations

import re

_API = re.compile(r"^/(?:api/v1(?:/|$)|t/[^/]+/auth/v1(?:/|$))")
_GOTRUE = re.compile(r"^/t/[^/]+/auth/v1(?:/|$)")


def is_api_path(path: str) -> bool:
    return bool(_API.match(path))


def api_surface(path: str) -> str | None:
    """``"gotrue"``, ``"native"`` or ``None`` (not an API path)."""
    if _GOTRUE.match(path):
        return "gotrue"
    if _API.match(path):
        return "native"
    return None
