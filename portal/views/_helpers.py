from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from core.request_context import client_ip
from portal.gate import MFA_COOKIE_NAME, clear_cookie, portal_url, set_cookie
from portal.http import PortalRequest
from portal.services.auth import MFA_PENDING_SECONDS, Client, SignInResult
from portal.services.sessions import COOKIE_NAME, SESSION_LIFETIME


def client(request: HttpRequest) -> Client:
    return Client(ip_address=client_ip(request), user_agent=request.headers.get("User-Agent", "")[:300])


def signed_in_response(request: PortalRequest, result: SignInResult) -> HttpResponse:
    """After a first step: to the account page with a session, or to the second-factor step."""
    tenant = request.portal_tenant
    if result.session_token:
        response = HttpResponseRedirect(portal_url(tenant, "account"))
        set_cookie(response, tenant, COOKIE_NAME, result.session_token,
                   int(SESSION_LIFETIME.total_seconds()))
        clear_cookie(response, tenant, MFA_COOKIE_NAME)
        return response
    response = HttpResponseRedirect(portal_url(tenant, "login-verify"))
    set_cookie(response, tenant, MFA_COOKIE_NAME, result.mfa_pending or "", MFA_PENDING_SECONDS)
    return response
