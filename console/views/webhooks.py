"""A tenant's webhook endpoints and their delivery log: ``/t/<slug>/webhooks/`` (tenant admins)."""

from __future__ import annotations

import datetime as dt
import uuid

from django.contrib import messages
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from console.decorators import tenant_view
from console.errors import flash, form_add
from console.http import ConsoleRequest
from core.errors import ServiceError
from webhooks import selectors, services
from webhooks.forms import EndpointForm, ReplayForm
from webhooks.models import Delivery, Endpoint

ACTION = "manage_webhooks"


def _list_url(request: ConsoleRequest) -> str:
    return reverse("console:webhooks-list", args=[request.tenant.slug])


def _detail_url(request: ConsoleRequest, endpoint_id: uuid.UUID) -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("console:webhooks-detail", args=[request.tenant.slug, endpoint_id]))


def _endpoint(request: ConsoleRequest, endpoint_id: uuid.UUID) -> Endpoint:
    endpoint = selectors.endpoint_find(tenant=request.tenant, endpoint_id=endpoint_id)
    if endpoint is None:
        raise Http404("No such webhook endpoint.")
    return endpoint


def _list_page(request: ConsoleRequest, form: EndpointForm | None = None, status: int = 200) -> HttpResponse:
    return render(request, "console/webhooks/list.html", {
        "endpoints": selectors.endpoint_list(tenant=request.tenant),
        "form": form or EndpointForm(initial={"enabled": True}),
    }, status=status)


def _detail_page(request: ConsoleRequest, endpoint: Endpoint, *, form: EndpointForm | None = None,
                 secret: str = "", status: int = 200) -> HttpResponse:
    before = request.GET.get("before", "")
    state = request.GET.get("state", "")
    deliveries = selectors.delivery_page(endpoint=endpoint, before=int(before) if before.isdigit() else None,
                                         state=state)
    return render(request, "console/webhooks/detail.html", {
        "endpoint": endpoint,
        "form": form or EndpointForm(initial={
            "url": endpoint.url, "description": endpoint.description, "event_types": endpoint.event_types,
            "enabled": endpoint.enabled}),
        "replay_form": ReplayForm(initial={"since": f"{timezone.now() - dt.timedelta(days=1):%Y-%m-%dT%H:%M}"}),
        "deliveries": deliveries,
        "next_before": deliveries[-1].pk if len(deliveries) == selectors.PAGE else None,
        "state": state,
        "states": Delivery.State.choices,
        "secret": secret,
    }, status=status)


@tenant_view(ACTION)
@require_GET
def webhook_list(request: ConsoleRequest) -> HttpResponse:
    return _list_page(request)


@tenant_view(ACTION)
@require_POST
def webhook_create(request: ConsoleRequest) -> HttpResponse:
    form = EndpointForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            endpoint, _ = services.endpoint_create(
                actor=request.user, tenant=request.tenant, url=data["url"], event_types=data["event_types"],
                description=data["description"], enabled=data["enabled"])
        except ServiceError as exc:
            form_add(form, exc)
        else:
            messages.success(request, "Endpoint created. Reveal its signing secret below to set up the receiver.")
            return _detail_url(request, endpoint.pk)
    return _list_page(request, form, status=400)


@tenant_view(ACTION)
@require_GET
def webhook_detail(request: ConsoleRequest, endpoint_id: uuid.UUID) -> HttpResponse:
    return _detail_page(request, _endpoint(request, endpoint_id))


@tenant_view(ACTION)
@require_POST
def webhook_edit(request: ConsoleRequest, endpoint_id: uuid.UUID) -> HttpResponse:
    endpoint = _endpoint(request, endpoint_id)
    form = EndpointForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            services.endpoint_update(
                actor=request.user, tenant=request.tenant, endpoint_id=endpoint.pk, url=data["url"],
                event_types=data["event_types"], description=data["description"], enabled=data["enabled"])
        except ServiceError as exc:
            form_add(form, exc)
        else:
            messages.success(request, "Endpoint saved.")
            return _detail_url(request, endpoint.pk)
    return _detail_page(request, endpoint, form=form, status=400)


@tenant_view(ACTION)
@require_POST
def webhook_delete(request: ConsoleRequest, endpoint_id: uuid.UUID) -> HttpResponse:
    endpoint = _endpoint(request, endpoint_id)
    services.endpoint_delete(actor=request.user, tenant=request.tenant, endpoint_id=endpoint.pk)
    messages.success(request, f"Endpoint {endpoint.url} removed with its delivery log.")
    return HttpResponseRedirect(_list_url(request))


@tenant_view(ACTION)
@require_POST
def webhook_secret(request: ConsoleRequest, endpoint_id: uuid.UUID) -> HttpResponse:
    """Reveal (``rotate`` absent) or rotate the signing secret; the page shows it this once."""
    endpoint = _endpoint(request, endpoint_id)
    if request.POST.get("rotate"):
        secret = services.endpoint_rotate_secret(actor=request.user, tenant=request.tenant, endpoint_id=endpoint.pk)
        messages.success(request, "New secret made. The previous one keeps signing beside it for 24 hours.")
        endpoint.refresh_from_db()
    else:
        secret = services.endpoint_secret_reveal(actor=request.user, tenant=request.tenant, endpoint_id=endpoint.pk)
    return _detail_page(request, endpoint, secret=secret)


@tenant_view(ACTION)
@require_POST
def webhook_test(request: ConsoleRequest, endpoint_id: uuid.UUID) -> HttpResponse:
    endpoint = _endpoint(request, endpoint_id)
    services.endpoint_send_test(actor=request.user, tenant=request.tenant, endpoint_id=endpoint.pk)
    messages.success(request, "Test event queued: its delivery appears in the log below.")
    return _detail_url(request, endpoint.pk)


@tenant_view(ACTION)
@require_POST
def webhook_replay(request: ConsoleRequest, endpoint_id: uuid.UUID) -> HttpResponse:
    """Every failed delivery of this endpoint since a time, sent again under the original ids."""
    endpoint = _endpoint(request, endpoint_id)
    form = ReplayForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give the time to replay from, e.g. 2026-12-01T10:00.")
        return _detail_url(request, endpoint.pk)
    since = form.cleaned_data["since"]
    if timezone.is_naive(since):
        since = timezone.make_aware(since, dt.UTC)
    try:
        count = services.deliveries_replay(actor=request.user, tenant=request.tenant, since=since,
                                           failed_only=True, endpoint_id=endpoint.pk)
    except ServiceError as exc:
        flash(request, exc)
    else:
        messages.success(request, f"{count} failed deliver{'y' if count == 1 else 'ies'} queued again.")
    return _detail_url(request, endpoint.pk)


@tenant_view(ACTION)
@require_GET
def delivery_detail(request: ConsoleRequest, endpoint_id: uuid.UUID, delivery_id: int) -> HttpResponse:
    endpoint = _endpoint(request, endpoint_id)
    delivery = selectors.delivery_find(endpoint=endpoint, delivery_id=delivery_id)
    if delivery is None:
        raise Http404("No such delivery.")
    return render(request, "console/webhooks/delivery.html", {
        "endpoint": endpoint, "delivery": delivery, "attempts": selectors.attempt_list(delivery=delivery),
    })


@tenant_view(ACTION)
@require_POST
def delivery_replay(request: ConsoleRequest, endpoint_id: uuid.UUID, delivery_id: int) -> HttpResponse:
    endpoint = _endpoint(request, endpoint_id)
    services.delivery_replay(actor=request.user, tenant=request.tenant, endpoint_id=endpoint.pk,
                             delivery_id=delivery_id)
    messages.success(request, "Delivery queued again (same event id).")
    return HttpResponseRedirect(
        reverse("console:webhooks-delivery", args=[request.tenant.slug, endpoint.pk, delivery_id]))
