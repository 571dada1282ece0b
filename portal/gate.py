"""The portal's one request gate: tenant from the URL, session from the cookie, on every request.

``portal_view`` resolves ``/p/<slug>/``, refuses suspended and deleted tenants with a clear page,
validates the session cookie (``AppSession`` row: revoked, expired, banned, deleted or
unconfirmed user → refused on the very next request), loads the impersonator when there is one,
forces MFA enrolment when the tenant requires it, and audits page views while impersonating.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import urlencode

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from accounts.models import AppSession, AppUser, User
from audit import services as audit
from core.errors import Refused
from portal.http import PortalRequest
from portal.models import Impersonation
from portal.services.common import PortalActor, record
from portal.services.impersonation import impersonation_revoke_session, impersonation_session_gone
from portal.services.sessions import COOKIE_NAME, cookie_path, session_validate
from tenants.access import can
from tenants.config import tenant_settings
from tenants.models import Tenant

MFA_COOKIE_NAME = "portal_mfa"


def portal_url(tenant: Tenant, name: str = "home", *args: object) -> str:
    """The path of a portal page of ``tenant`` (``name`` of ``portal.urls``)."""
    return reverse(f"portal:{name}", args=[tenant.slug, *args])


def login_redirect(tenant: Tenant, reason: str | None = None) -> HttpResponseRedirect:
    query = "?" + urlencode({"reason": reason}) if reason and reason != "none" else ""
    return HttpResponseRedirect(portal_url(tenant, "login") + query)


def set_cookie(response: HttpResponse, tenant: Tenant, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path=cookie_path(tenant), httponly=True, samesite="Lax",
        secure=bool(getattr(settings, "SESSION_COOKIE_SECURE", False)),
    )


def clear_cookie(response: HttpResponse, tenant: Tenant, name: str) -> None:
    response.delete_cookie(name, path=cookie_path(tenant), samesite="Lax")


def _closed(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    suspended = tenant.status == Tenant.Status.SUSPENDED
    return render(
        request, "portal/closed.html",
        {"tenant": tenant, "suspended": suspended},
        status=403 if suspended else 410,
    )


def portal_view(*, signed_in: bool = True, enrolment: bool = False) -> Callable[[Callable], Callable]:
    """Gate for portal views. ``signed_in``: a valid session is required (else the sign-in
    page). ``enrolment``: the view is part of MFA enrolment, reachable while the tenant's
    ``require_mfa`` forces it. Sets ``request.portal_tenant`` and ``request.portal_actor``
    (``portal.http.PortalRequest``; ``SignedInPortalRequest`` when ``signed_in``)."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def wrapper(http_request: HttpRequest, slug: str, *args: Any, **kwargs: Any) -> HttpResponse:
            request = cast(PortalRequest, http_request)
            tenant = Tenant.objects.filter(slug=slug).first()
            if tenant is None or tenant.status not in {
                Tenant.Status.ACTIVE, Tenant.Status.SUSPENDED, Tenant.Status.DELETED
            }:
                raise Http404("No such application.")
            if tenant.status != Tenant.Status.ACTIVE:
                return _closed(request, tenant)
            request.portal_tenant = tenant
            request.portal_actor = None
            refused: str | None = None
            raw = request.COOKIES.get(COOKIE_NAME)
            if raw:
                try:
                    valid = session_validate(tenant=tenant, raw=raw)
                except Refused as exc:
                    refused = exc.code
                    if exc.facts.get("impersonated"):
                        impersonation_session_gone(tenant=tenant, session_id=exc.facts["session_id"])
                else:
                    actor = _actor(tenant, valid.session, valid.user)
                    if actor is None:  # the impersonator lost the right to impersonate
                        refused = "impersonation_ended"
                        impersonation_revoke_session(tenant=tenant, session=valid.session)
                    request.portal_actor = actor
            actor = request.portal_actor
            response: HttpResponse
            if signed_in and actor is None:
                response = login_redirect(tenant, refused)
            elif actor is not None and _must_enrol(tenant, actor) and not enrolment:
                response = HttpResponseRedirect(portal_url(tenant, "mfa"))
            else:
                if actor is not None and actor.is_impersonating and request.method == "GET":
                    record("impersonation.page_view", tenant=tenant, user=actor.user, actor=actor,
                           data={"path": request.path[:300]}, action=audit.ACCESS)
                response = view(request, *args, **kwargs)
            if refused is not None:
                clear_cookie(response, tenant, COOKIE_NAME)
            return response

        return wrapper

    return decorator


def _actor(tenant: Tenant, session: AppSession, user: AppUser) -> PortalActor | None:
    """The request's actor; ``None`` when an impersonator was deactivated or lost the role, or
    the impersonation is over: ended, past its own ``expires_at`` (checked here, not left to
    the session row's expiry), or without a record at all."""
    if not session.impersonator_id:
        return PortalActor(user=user, session=session)
    staff = User.objects.filter(pk=session.impersonator_id).first()
    if staff is None or not can(staff, tenant, "impersonate"):
        return None
    imp = (
        Impersonation.objects.filter(tenant=tenant, session_id=session.pk, staff_id=staff.pk)
        .only("pk", "ended_at", "expires_at").first()
    )
    if imp is None or imp.ended_at is not None or imp.expires_at <= timezone.now():
        return None
    return PortalActor(user=user, session=session, impersonator=staff, impersonation_id=imp.pk)


def _must_enrol(tenant: Tenant, actor: PortalActor) -> bool:
    if actor.is_impersonating or actor.user.mfa_enabled:
        return False
    return tenant_settings(tenant).require_mfa
