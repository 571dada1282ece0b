from __future__ import annotations

from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from core.request_context import client_ip
from portal.gate import MFA_COOKIE_NAME, clear_cookie, portal_url, set_cookie
from portal.http import PortalRequest
from portal.services.auth import MFA_PENDING_SECONDS, Client, SignInResult
from portal.services.sessions import COOKIE_NAME, SESSION_LIFETIME
from tenants.config import tenant_settings


def client(request: HttpRequest) -> Client:
    return Client(ip_address=client_ip(request), user_agent=request.headers.get("User-Agent", "")[:300])


def allowed_redirect(request: PortalRequest) -> str:
    """The request's ``?redirect_to=`` when the tenant's redirect allow-list holds it, else ``""``
    (checked again here: a link's query can be edited, so the portal never follows another URL)."""
    return tenant_settings(request.portal_tenant).redirect_allowed(request.GET.get("redirect_to"))


def signed_in_response(request: PortalRequest, result: SignInResult) -> HttpResponse:
    """After a first step: to the account page with a session (or to the link's allowed
    ``redirect_to``), or to the second-factor step (which carries the ``redirect_to`` on)."""
    tenant = request.portal_tenant
    goto = allowed_redirect(request)
    if result.session_token:
        response = HttpResponseRedirect(goto or portal_url(tenant, "account"))
        set_cookie(response, tenant, COOKIE_NAME, result.session_token,
                   int(SESSION_LIFETIME.total_seconds()))
        clear_cookie(response, tenant, MFA_COOKIE_NAME)
        return response
    verify = portal_url(tenant, "login-verify")
    response = HttpResponseRedirect(f"{verify}?{urlencode({'redirect_to': goto})}" if goto else verify)
    set_cookie(response, tenant, MFA_COOKIE_NAME, result.mfa_pending or "", MFA_PENDING_SECONDS)
    return response
