"""Times typed into a query string (paging cursors, "before" filters)."""

from __future__ import annotations

from datetime import UTC, datetime

from django.utils import timezone
from django.utils.dateparse import parse_datetime


def query_moment(raw: str | None) -> datetime | None:
    """An aware UTC time from an ISO text, or ``None`` for a malformed one or one off the calendar
    in UTC (the database compares in UTC: 9999-12-31T23:59-12:00 is past year 9999 there)."""
    if not raw:
        return None
    try:
        value = parse_datetime(raw[:40])
        if value is None:
            return None
        if timezone.is_naive(value):
            value = timezone.make_aware(value, UTC)
        return value.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
