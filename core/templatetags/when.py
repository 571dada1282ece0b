"""The one date/time component of the console and the portal (a builtin: no ``{% load %}``).

- ``{{ value|when }}``: the absolute time in the staff member's time zone ("Dec 1, 10:44"; the year
  whenever it is not this one: "Mar 3, 2025, 09:12"), then the relative time as a secondary hint
  ("3 hours ago", "in 6 days", "just now"), in one ``<time>`` whose title names the time zone.
- ``{{ value|when_date }}``: the day only ("Dec 1", "Mar 3, 2025").
- ``{{ value|ago }}``: the relative time alone, inside a ``<time>`` titled with the absolute one.

The time zone is the one ``core.time_zones.activate_time_zone`` activated (the staff member's
setting, else the browser's). The ban sentinel (year 9999) reads "no end date".
"""

from __future__ import annotations

from datetime import date, datetime

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()
UNITS = (("year", 365 * 86400), ("month", 30 * 86400), ("day", 86400), ("hour", 3600), ("minute", 60))
NO_END = "no end date"


def _local(value: datetime) -> datetime:
    try:
        return timezone.localtime(value) if timezone.is_aware(value) else value
    except OverflowError:  # 9999-12-31T23:59-12:00 has no local time east of it: shown as stored
        return value


def absolute(value: datetime | date, *, with_time: bool = True, now: datetime | None = None) -> str:
    today = timezone.localdate(now) if now is not None else timezone.localdate()
    local = _local(value) if isinstance(value, datetime) else value
    if local.year >= 9999:
        return NO_END
    text = f"{local:%b} {local.day}"
    if local.year != today.year:
        text += f", {local.year}"
    if with_time and isinstance(local, datetime):
        text += f", {local:%H:%M}"
    return text


def relative(value: datetime, *, now: datetime | None = None) -> str:
    seconds = ((now or timezone.now()) - value).total_seconds()
    if value.year >= 9999:
        return ""
    if abs(seconds) < 60:
        return "just now"
    size_name = next((u for u in UNITS if abs(seconds) >= u[1]), UNITS[-1])
    n = int(abs(seconds) // size_name[1])
    text = f"{n} {size_name[0]}{'s' if n != 1 else ''}"
    return f"in {text}" if seconds < 0 else f"{text} ago"


def _title(value: datetime) -> str:
    local = _local(value)
    return f"{local:%A, %d %B %Y, %H:%M:%S} {timezone.get_current_timezone_name()}"


@register.filter(is_safe=True)
def when(value: datetime | None) -> SafeString | str:
    if not isinstance(value, datetime):
        return when_date(value)
    hint = relative(value)
    if not hint:
        return format_html('<time datetime="{}" class="when">{}</time>', value.isoformat(), absolute(value))
    return format_html('<time datetime="{}" title="{}" class="when">{} <span class="when-rel">· {}</span></time>',
                       value.isoformat(), _title(value), absolute(value), hint)


@register.filter(is_safe=True)
def when_date(value: datetime | date | None, now: datetime | None = None) -> SafeString | str:
    if not isinstance(value, date):
        return ""
    title = _title(value) if isinstance(value, datetime) else value.isoformat()
    return format_html('<time datetime="{}" title="{}" class="when">{}</time>', value.isoformat(), title,
                       absolute(value, with_time=False, now=now))


@register.filter(is_safe=True)
def ago(value: datetime | None, now: datetime | None = None) -> SafeString | str:
    if not isinstance(value, datetime):
        return ""
    if value.year >= 9999:
        return NO_END
    return format_html('<time datetime="{}" title="{}" class="when">{}</time>', value.isoformat(),
                       f"{absolute(value, now=now)} · {_title(value)}", relative(value, now=now))


@register.filter
def device(user_agent: str | None) -> str:
    """A user agent as a person reads it ("Safari 17 on macOS"), see ``core.user_agents``."""
    from core.user_agents import describe

    return describe(user_agent or "")
