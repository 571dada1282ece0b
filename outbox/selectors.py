"""Reads of the mail outbox (the development page /mail/)."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q, QuerySet

from outbox.models import OutboxMessage

PAGE_SIZE = 50


def outbox_list(*, before: datetime | None = None, limit: int = PAGE_SIZE, q: str = "", status: str = "",
                kind: str = "", tenant_slug: str = "") -> list[OutboxMessage]:
    """Newest first, keyset-paginated on ``created_at`` (no OFFSET); ``q`` searches the recipient
    and the subject (substring), the others are exact filters."""
    qs: QuerySet[OutboxMessage] = OutboxMessage.objects.select_related("tenant").defer("body")
    if q:
        qs = qs.filter(Q(to__icontains=q) | Q(subject__icontains=q))
    if status:
        qs = qs.filter(status=status)
    if kind:
        qs = qs.filter(kind=kind)
    if tenant_slug:
        qs = qs.filter(tenant__slug=tenant_slug)
    if before is not None:
        qs = qs.filter(created_at__lt=before)
    return list(qs.order_by("-created_at", "-id")[:limit])


def outbox_get(*, pk) -> OutboxMessage | None:
    try:
        return OutboxMessage.objects.select_related("tenant").filter(pk=pk).first()
    except (ValueError, TypeError):
        return None
