"""The shared view gates: tenant resolution and recent-OTP step-up."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import urlencode, urlsplit

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.urls import reverse
from django_htmx.http import HttpResponseClientRedirect

from audit import services as audit
from console import sudo
from console.http import ConsoleRequest
from console.staff_session import is_verified, otp_is_recent
from core.access import is_instance_admin, role_can
from tenants import db as tenant_db
from tenants.access import visible_tenant_and_role
from tenants.models import Tenant

View = Callable[..., HttpResponseBase]


def audit_refusal(request: HttpRequest, *, action: str, reason: str, tenant: Tenant | None = None) -> None:
    """Every refused authorization lands in the audit trail (SECURITY.md, "Audit")."""
    user = request.user
    if not user.is_authenticated:
        return  # the staff middleware sends those to sign-in; nothing was attempted as anyone
    audit.record(
        event="authz.refused", actor=user, tenant=tenant, target_model=Tenant,
        target_pk=tenant.pk if tenant is not None else "",
        target_repr=tenant.slug if tenant is not None else "", action=audit.ACCESS,
        data={"action": action, "reason": reason, "path": request.path[:300],
              "method": request.method},
    )


def _unverified(request: HttpRequest) -> HttpResponse | None:
    """The gate stays closed without the staff middleware too: no password + TOTP, no page."""
    if is_verified(request.user):
        return None
    target = reverse("console:login") + "?" + urlencode({"next": request.get_full_path()})
    if getattr(request, "htmx", False):
        return HttpResponseClientRedirect(target)
    return HttpResponseRedirect(target)


def resolve_tenant(request: HttpRequest, slug: str, action: str) -> tuple[Tenant, str]:
    """The tenant of ``/t/<slug>/...`` and the actor's role there, or the refusal.

    Unknown tenants, tenants the actor is not assigned to, and deleted or unprovisioned tenants
    all raise the same 404; an assigned actor whose role lacks ``action`` gets 403. Both
    refusals of a known tenant are audited. The tenant never comes from the query string, a
    header or a form.
    """
    tenant, role = visible_tenant_and_role(request.user, slug)
    if tenant is None or role is None:
        if tenant is not None:
            audit_refusal(request, action=action, reason="not_assigned", tenant=tenant)
        raise Http404("No such tenant.")
    if not role_can(role, action):
        audit_refusal(request, action=action, reason="role", tenant=tenant)
        raise PermissionDenied("Your role in this tenant does not allow this.")
    return tenant, role


def tenant_view(action: str = "view_tenant") -> Callable[[View], View]:
    """The one tenant gate of the console, for every ``/t/<slug>/...`` view.

    Requires a verified staff session, resolves the tenant once (``resolve_tenant``) and sets
    ``request.tenant``, ``request.tenant_role`` and ``request.tenant_alias``.
    """
    role_can(None, action)  # fail at import time for an unknown action

    def decorator(view: View) -> View:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, slug: str, *args: Any, **kwargs: Any) -> HttpResponseBase:
            refused = _unverified(request)
            if refused is not None:
                return refused
            tenant, role = resolve_tenant(request, slug, action)
            scoped = cast(ConsoleRequest, request)  # what this gate adds, declared there
            scoped.tenant = tenant
            scoped.tenant_role = role
            scoped.tenant_alias = tenant_db.using(tenant)
            return view(scoped, *args, **kwargs)

        wrapper.__dict__["tenant_action"] = action
        return wrapper

    return decorator


def reverify_url(request: HttpRequest) -> str:
    return reverse("console:reverify") + "?" + urlencode({"next": request.get_full_path()})


def recent_otp_required(view: View) -> View:
    """Destructive actions need an OTP verification from the last 15 minutes (policy).

    Without one, the actor is sent to the step-up page. A refused POST is kept (``console.sudo``):
    the step-up page names it and completes it after the code; a GET comes back to its page.
    """

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if otp_is_recent(request):
            return view(request, *args, **kwargs)
        target = reverify_url(request)
        if request.method != "GET":
            # Back to the page the form was on: the referer's path, when it is this site's.
            referer = request.headers.get("Referer", "")
            path = "/"
            if referer.startswith(request.build_absolute_uri("/")):
                parts = urlsplit(referer)
                path = parts.path + (f"?{parts.query}" if parts.query else "")
            query = {"next": path}
            key = sudo.pending_store(request, back=path, kwargs=kwargs)
            if key is not None:
                query["pending"] = key
            target = reverse("console:reverify") + "?" + urlencode(query)
        if getattr(request, "htmx", False):
            return HttpResponseClientRedirect(target)
        return HttpResponseRedirect(target)

    return wrapper


def instance_admin_required(view: View) -> View:
    """Instance pages (``/tenants/``, ``/audit/``...): instance admins only; for everybody
    else they do not exist (404, like a tenant they are not assigned to).

    The staff middleware has already required a verified session; this is the role gate.
    """

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not is_instance_admin(request.user):
            audit_refusal(request, action="instance_admin", reason="not_instance_admin")
            raise Http404("No such page.")
        return view(request, *args, **kwargs)

    return wrapper
