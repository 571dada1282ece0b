"""Per-request facts that services and the audit trail need: client address and correlation id.

Set by ``console.middleware.request_context``; management commands and tests run without them
(address ``None``, a fresh correlation id per ``get_correlation_id()`` caller that binds one).
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from contextvars import ContextVar
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest

_CID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@dataclass(frozen=True)
class RequestContext:
    remote_addr: str | None
    correlation_id: str
    user_agent: str = ""
    base_url: str = ""  # scheme://host[:port] the request came in on


_current: ContextVar[RequestContext | None] = ContextVar("adminpanel_request", default=None)
# The API credential serving the request ({"via": "api", "credential_prefix": ..., "credential_id": ...}); the audit
# trail adds it to every entry the request writes.
_credential: ContextVar[dict[str, str] | None] = ContextVar("adminpanel_credential", default=None)


def bind_credential(facts: dict[str, str] | None) -> None:
    _credential.set(facts)


def current_credential() -> dict[str, str] | None:
    return _credential.get()


def client_ip(request: HttpRequest) -> str | None:
    """The socket peer, or the configured trusted proxy header: never the left-most XFF."""
    raw = None
    header = getattr(settings, "TRUSTED_PROXY_HEADER", "")
    if header:
        raw = request.headers.get(header)
        if raw and "," in raw:
            # A proxy that appends: the right-most value is the one the trusted proxy saw.
            raw = raw.rsplit(",", 1)[1]
    if not raw:
        raw = request.META.get("REMOTE_ADDR")
    try:
        return str(ipaddress.ip_address((raw or "").strip()))
    except ValueError:
        return None


def bind(request: HttpRequest) -> RequestContext:
    incoming = request.headers.get("X-Request-ID", "")
    cid = incoming if _CID_RE.match(incoming) else uuid.uuid4().hex
    try:
        base_url = request.build_absolute_uri("/").rstrip("/")
    except Exception:  # noqa: BLE001 - a host Django refuses: links fall back to the setting
        base_url = ""
    ctx = RequestContext(
        remote_addr=client_ip(request),
        correlation_id=cid,
        user_agent=request.headers.get("User-Agent", "")[:300],
        base_url=base_url,
    )
    _current.set(ctx)
    return ctx


def current() -> RequestContext | None:
    return _current.get()


def reset() -> None:
    _current.set(None)
    _credential.set(None)


def activate(ctx: RequestContext | None) -> None:
    """Bind facts carried over from a request: a job runs later, in a worker, on its behalf
    (its audit entries keep the request's address and correlation id)."""
    _current.set(ctx)


def get_correlation_id() -> str | None:
    """AUDITLOG_CID_GETTER: the correlation id of the request being served, if any."""
    ctx = _current.get()
    return ctx.correlation_id if ctx else None


def public_url(path: str) -> str:
    """The absolute address of ``path`` in links mailed to people.

    ``PUBLIC_BASE_URL`` when it is set (production requires it). In development without it, the
    address the current request came in on, so ``make run PORT=8101`` mails links to :8101;
    outside a request (a worker, a command), ``http://$HOST:$PORT``.
    """
    base = getattr(settings, "PUBLIC_BASE_URL", "")
    if not base:
        ctx = _current.get()
        base = ctx.base_url if ctx is not None and ctx.base_url else settings.DEVELOPMENT_BASE_URL
    return base.rstrip("/") + path
