"""Reads of the mail outbox (the development page /mail/)."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet

from outbox.models import OutboxMessage

PAGE_SIZE = 50


def outbox_list(*, before: datetime | None = None, limit: int = PAGE_SIZE) -> list[OutboxMessage]:
    """Newest first, keyset-paginated on ``created_at`` (no OFFSET)."""
    qs: QuerySet[OutboxMessage] = OutboxMessage.objects.select_related("tenant").defer("body")
    if before is not None:
        qs = qs.filter(created_at__lt=before)
    return list(qs.order_by("-created_at", "-id")[:limit])


def outbox_get(*, pk) -> OutboxMessage | None:
    try:
        return OutboxMessage.objects.select_related("tenant").filter(pk=pk).first()
    except (ValueError, TypeError):
        return None
