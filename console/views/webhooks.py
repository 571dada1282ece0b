"""Webhook endpoints and their delivery log: a tenant's at ``/t/<slug>/webhooks/`` (its admins),
the instance's (tenant events of every tenant) at ``/webhooks/`` (instance admins).

Each page is written once, for a scope (``tenant`` or ``None``); the two gates below make the
tenant and the instance view of it.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from console.decorators import View, instance_admin_required, recent_otp_required, tenant_view
from console.errors import flash, form_add
from core.errors import ServiceError
from tenants.models import Tenant
from webhooks import selectors, services
from webhooks.forms import EndpointForm, ReplayForm
from webhooks.models import Delivery, Endpoint

ACTION = "manage_webhooks"
Page = Callable[..., HttpResponse]


def scoped(view: Page, *, step_up: bool = False) -> tuple[View, View]:
    """The tenant view (``tenant_view``: admins of the tenant) and the instance view
    (instance admins) of one page written as ``view(request, tenant_or_none, ...)``. ``step_up``:
    an OTP from the last 15 minutes first (what can send the tenant's events elsewhere, or show
    the secret that signs them, is guarded like its API keys)."""
    page: View = recent_otp_required(view) if step_up else view

    @tenant_view(ACTION)
    @functools.wraps(view)
    def in_tenant(request: Any, *args: Any, **kwargs: Any) -> HttpResponseBase:
        return page(request, request.tenant, *args, **kwargs)

    @instance_admin_required
    @functools.wraps(view)
    def in_instance(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        return page(request, None, *args, **kwargs)

    return in_tenant, in_instance


def _url(tenant: Tenant | None, name: str, *args: Any) -> str:
    if tenant is None:
        return reverse(f"console:instance-{name}", args=args)
    return reverse(f"console:{name}", args=[tenant.slug, *args])


def _context(tenant: Tenant | None) -> dict[str, Any]:
    return {"layout": "layouts/base.html" if tenant is None else "layouts/tenant.html",
            "base": _url(tenant, "webhooks-list"), "scope_tenant": tenant}


def _detail_url(tenant: Tenant | None, endpoint_id: uuid.UUID) -> HttpResponseRedirect:
    return HttpResponseRedirect(_url(tenant, "webhooks-detail", endpoint_id))


def _endpoint(tenant: Tenant | None, endpoint_id: uuid.UUID) -> Endpoint:
    endpoint = selectors.endpoint_find(tenant=tenant, endpoint_id=endpoint_id)
    if endpoint is None:
        raise Http404("No such webhook endpoint.")
    return endpoint


def _form(tenant: Tenant | None, data: Any = None, **kwargs: Any) -> EndpointForm:
    return EndpointForm(data, scope="instance" if tenant is None else "tenant", **kwargs)


def _list_page(request: HttpRequest, tenant: Tenant | None, form: EndpointForm | None = None,
               status: int = 200) -> HttpResponse:
    return render(request, "console/webhooks/list.html", {
        **_context(tenant), "endpoints": selectors.endpoint_list(tenant=tenant),
        "create_url": _url(tenant, "webhooks-create"),
        "form": form or _form(tenant, initial={"enabled": True}),
    }, status=status)


def _detail_page(request: HttpRequest, tenant: Tenant | None, endpoint: Endpoint, *,
                 form: EndpointForm | None = None, secret: str = "", status: int = 200) -> HttpResponse:
    before = request.GET.get("before", "")
    state = request.GET.get("state", "")
    deliveries = selectors.delivery_page(endpoint=endpoint, before=int(before) if before.isdigit() else None,
                                         state=state)
    return render(request, "console/webhooks/detail.html", {
        **_context(tenant), "endpoint": endpoint, "here": _url(tenant, "webhooks-detail", endpoint.pk),
        "edit_url": _url(tenant, "webhooks-edit", endpoint.pk),
        "form": form or _form(tenant, initial={
            "url": endpoint.url, "description": endpoint.description, "event_types": endpoint.event_types,
            "enabled": endpoint.enabled}),
        "replay_form": ReplayForm(initial={"since": f"{timezone.now() - dt.timedelta(days=1):%Y-%m-%dT%H:%M}"}),
        "deliveries": deliveries,
        "next_before": deliveries[-1].pk if len(deliveries) == selectors.PAGE else None,
        "state": state,
        "states": Delivery.State.choices,
        "secret": secret,
    }, status=status)


@require_GET
def _list(request: HttpRequest, tenant: Tenant | None) -> HttpResponse:
    return _list_page(request, tenant)


@require_POST
def _create(request: HttpRequest, tenant: Tenant | None) -> HttpResponse:
    form = _form(tenant, request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            endpoint, _ = services.endpoint_create(
                actor=request.user, tenant=tenant, url=data["url"], event_types=data["event_types"],
                description=data["description"], enabled=data["enabled"])
        except ServiceError as exc:
            form_add(form, exc)
        else:
            messages.success(request, "Endpoint created. Reveal its signing secret below to set up the receiver.")
            return _detail_url(tenant, endpoint.pk)
    return _list_page(request, tenant, form, status=400)


@require_GET
def _detail(request: HttpRequest, tenant: Tenant | None, endpoint_id: uuid.UUID) -> HttpResponse:
    return _detail_page(request, tenant, _endpoint(tenant, endpoint_id))


@require_POST
def _edit(request: HttpRequest, tenant: Tenant | None, endpoint_id: uuid.UUID) -> HttpResponse:
    endpoint = _endpoint(tenant, endpoint_id)
    form = _form(tenant, request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            services.endpoint_update(
                actor=request.user, tenant=tenant, endpoint_id=endpoint.pk, url=data["url"],
                event_types=data["event_types"], description=data["description"], enabled=data["enabled"])
        except ServiceError as exc:
            form_add(form, exc)
        else:
            messages.success(request, "Endpoint saved.")
            return _detail_url(tenant, endpoint.pk)
    return _detail_page(request, tenant, endpoint, form=form, status=400)


@require_POST
def _delete(request: HttpRequest, tenant: Tenant | None, endpoint_id: uuid.UUID) -> HttpResponse:
    endpoint = _endpoint(tenant, endpoint_id)
    services.endpoint_delete(actor=request.user, tenant=tenant, endpoint_id=endpoint.pk)
    messages.success(request, f"Endpoint {endpoint.url} removed with its delivery log.")
    return HttpResponseRedirect(_url(tenant, "webhooks-list"))


@require_POST
def _secret(request: HttpRequest, tenant: Tenant | None, endpoint_id: uuid.UUID) -> HttpResponse:
    """Reveal (``rotate`` absent) or rotate the signing secret; the page shows it this once."""
    endpoint = _endpoint(tenant, endpoint_id)
    if request.POST.get("rotate"):
        secret = services.endpoint_rotate_secret(actor=request.user, tenant=tenant, endpoint_id=endpoint.pk)
        messages.success(request, "New secret made. The previous one keeps signing beside it for 24 hours.")
        endpoint.refresh_from_db()
    else:
        secret = services.endpoint_secret_reveal(actor=request.user, tenant=tenant, endpoint_id=endpoint.pk)
    return _detail_page(request, tenant, endpoint, secret=secret)


@require_POST
def _test(request: HttpRequest, tenant: Tenant | None, endpoint_id: uuid.UUID) -> HttpResponse:
    endpoint = _endpoint(tenant, endpoint_id)
    services.endpoint_send_test(actor=request.user, tenant=tenant, endpoint_id=endpoint.pk)
    messages.success(request, "Test event queued: its delivery appears in the log below.")
    return _detail_url(tenant, endpoint.pk)


@require_POST
def _replay(request: HttpRequest, tenant: Tenant | None, endpoint_id: uuid.UUID) -> HttpResponse:
    """Every failed delivery of this endpoint since a time, sent again under the original ids."""
    endpoint = _endpoint(tenant, endpoint_id)
    form = ReplayForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give the time to replay from, e.g. 2026-12-01T10:00.")
        return _detail_url(tenant, endpoint.pk)
    since = form.cleaned_data["since"]
    if timezone.is_naive(since):
        since = timezone.make_aware(since, dt.UTC)
    try:
        count = services.deliveries_replay(actor=request.user, tenant=tenant, since=since,
                                           failed_only=True, endpoint_id=endpoint.pk)
    except ServiceError as exc:
        flash(request, exc)
    else:
        messages.success(request, f"{count} failed deliver{'y' if count == 1 else 'ies'} queued again.")
    return _detail_url(tenant, endpoint.pk)


@require_GET
def _delivery(request: HttpRequest, tenant: Tenant | None, endpoint_id: uuid.UUID, delivery_id: int) -> HttpResponse:
    endpoint = _endpoint(tenant, endpoint_id)
    delivery = selectors.delivery_find(endpoint=endpoint, delivery_id=delivery_id)
    if delivery is None:
        raise Http404("No such delivery.")
    return render(request, "console/webhooks/delivery.html", {
        **_context(tenant), "endpoint": endpoint, "delivery": delivery,
        "here": _url(tenant, "webhooks-detail", endpoint.pk),
        "attempts": selectors.attempt_list(delivery=delivery),
    })


@require_POST
def _delivery_replay(request: HttpRequest, tenant: Tenant | None, endpoint_id: uuid.UUID,
                     delivery_id: int) -> HttpResponse:
    endpoint = _endpoint(tenant, endpoint_id)
    services.delivery_replay(actor=request.user, tenant=tenant, endpoint_id=endpoint.pk, delivery_id=delivery_id)
    messages.success(request, "Delivery queued again (same event id).")
    return HttpResponseRedirect(_url(tenant, "webhooks-delivery", endpoint.pk, delivery_id))


webhook_list, instance_webhook_list = scoped(_list)
webhook_create, instance_webhook_create = scoped(_create, step_up=True)
webhook_detail, instance_webhook_detail = scoped(_detail)
webhook_edit, instance_webhook_edit = scoped(_edit, step_up=True)
webhook_delete, instance_webhook_delete = scoped(_delete, step_up=True)
webhook_secret, instance_webhook_secret = scoped(_secret, step_up=True)
webhook_test, instance_webhook_test = scoped(_test)
webhook_replay, instance_webhook_replay = scoped(_replay)
delivery_detail, instance_delivery_detail = scoped(_delivery)
delivery_replay, instance_delivery_replay = scoped(_delivery_replay)
