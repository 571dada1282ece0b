"""The link pages: ask for a recovery or magic link, and open invitation, recovery, magic and
email-change links.

Opening a link (GET, or HEAD as mail scanners send) never uses it: it answers like GET (the
server sends no body). The form behind it (POST) does.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_http_methods

from accounts.models import ActionToken
from core.errors import ServiceError
from portal.forms import EmailForm, SetPasswordForm
from portal.gate import portal_url, portal_view
from portal.http import PortalRequest
from portal.services import auth as services
from portal.services import email_change as email_changes
from portal.views._helpers import client, signed_in_response

LINK_METHODS = ["GET", "HEAD", "POST"]
KINDS = {
    "recover": (ActionToken.Purpose.RECOVERY, "Reset your password",
                "We will email you a link to choose a new password."),
    "magic": (ActionToken.Purpose.MAGIC_LINK, "Sign in with a link",
              "We will email you a link that signs you in, once."),
}


def _kind_view(kind: str) -> Callable[..., HttpResponse]:
    purpose, title, lead = KINDS[kind]

    @require_http_methods(["GET", "POST"])
    @portal_view(signed_in=False)
    def view(request: PortalRequest) -> HttpResponse:
        tenant = request.portal_tenant
        form = EmailForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            services.link_request(tenant=tenant, email=form.cleaned_data["email"], purpose=purpose)
            # The same answer whatever happened: no account, banned, rate-limited or sent.
            return HttpResponseRedirect(portal_url(tenant, f"{kind}-sent"))
        return render(request, "portal/link_request.html",
                      {"tenant": tenant, "form": form, "title": title, "lead": lead, "kind": kind,
                       "action": portal_url(tenant, f"{kind}-request")})

    view.__name__ = f"{kind}_request"
    return view


recover_request = _kind_view("recover")
magic_request = _kind_view("magic")


@require_GET
@portal_view(signed_in=False)
def link_sent(request: PortalRequest) -> HttpResponse:
    return render(request, "portal/link_sent.html", {"tenant": request.portal_tenant})


def _invalid(request: PortalRequest, message: str) -> HttpResponse:
    return render(request, "portal/link_invalid.html",
                  {"tenant": request.portal_tenant, "message": message}, status=400)


def _password_link(
    purpose: str, template: str, complete: Callable[..., services.SignInResult],
) -> Callable[..., HttpResponse]:
    @require_http_methods(LINK_METHODS)
    @portal_view(signed_in=False)
    def view(request: PortalRequest, token: str) -> HttpResponse:
        tenant = request.portal_tenant
        try:
            user = services.link_peek(tenant=tenant, raw=token, purpose=purpose)
        except ServiceError as exc:
            return _invalid(request, exc.message)
        form = SetPasswordForm(request.POST or None, tenant=tenant, user=user)
        if request.method == "POST" and form.is_valid():
            try:
                result = complete(tenant=tenant, raw=token, password=form.cleaned_data["password1"],
                                  client=client(request))
            except ServiceError as exc:
                if "password" not in exc.fields:  # the link, or its user: the link's page
                    return _invalid(request, exc.message)
                for message in exc.fields["password"]:  # the form checked it: only if the rules changed
                    form.add_error("password1", message)
            else:
                return signed_in_response(request, result)
        return render(request, template, {"tenant": tenant, "form": form, "app_user": user})

    return view


accept = _password_link(ActionToken.Purpose.INVITE, "portal/accept.html", services.invitation_accept)
recover = _password_link(ActionToken.Purpose.RECOVERY, "portal/recover.html", services.recovery_complete)


@require_http_methods(LINK_METHODS)
@portal_view(signed_in=False)
def magic(request: PortalRequest, token: str) -> HttpResponse:
    tenant = request.portal_tenant
    try:
        user = services.link_peek(tenant=tenant, raw=token, purpose=ActionToken.Purpose.MAGIC_LINK)
        if request.method == "POST":
            result = services.magic_link_sign_in(tenant=tenant, raw=token, client=client(request))
            return signed_in_response(request, result)
    except ServiceError as exc:
        return _invalid(request, exc.message)
    return render(request, "portal/magic.html", {"tenant": tenant, "app_user": user})


@require_http_methods(LINK_METHODS)
@portal_view(signed_in=False)
def email_change(request: PortalRequest, token: str) -> HttpResponse:
    tenant = request.portal_tenant
    try:
        pending = email_changes.email_change_peek(tenant=tenant, raw=token)
        if request.method == "POST":
            user = email_changes.email_change_confirm(tenant=tenant, raw=token)
            return render(request, "portal/email_changed.html", {"tenant": tenant, "app_user": user})
    except ServiceError as exc:
        return _invalid(request, exc.message)
    return render(request, "portal/email_change.html", {"tenant": tenant, "pending": pending})
