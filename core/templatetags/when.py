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
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

register = template.Library()
UNITS = (("year", 365 * 86400), ("month", 30 * 86400), ("day", 86400), ("hour", 3600), ("minute", 60))
NO_END = "no end date"


class Clock:
    """The active time zone, its name and today's date, looked up once.

    Every filter below builds one; the users list builds one per page and renders its hundreds of
    dates with it (a thread-local time zone lookup per value was a fifth of the page's time).
    """

    __slots__ = ("now", "today", "tz", "tz_name")

    def __init__(self, now: datetime | None = None) -> None:
        self.tz = timezone.get_current_timezone()
        self.tz_name = escape(str(self.tz.tzname(None) or self.tz))
        self.now = now
        self.today = (now or timezone.now()).astimezone(self.tz).date()

    def local(self, value: datetime) -> datetime:
        try:
            return value.astimezone(self.tz) if value.utcoffset() is not None else value
        except OverflowError:  # 9999-12-31T23:59-12:00 has no local time east of it: shown as stored
            return value

    def absolute(self, value: datetime | date, *, with_time: bool = True) -> str:
        local = self.local(value) if isinstance(value, datetime) else value
        if local.year >= 9999:
            return NO_END
        text = f"{local:%b} {local.day}"
        if local.year != self.today.year:
            text += f", {local.year}"
        if with_time and isinstance(local, datetime):
            text += f", {local:%H:%M}"
        return text

    def title(self, value: datetime) -> str:
        return f"{self.local(value):%A, %d %B %Y, %H:%M:%S} {self.tz_name}"

    def when_date(self, value: datetime | date | None) -> SafeString | str:
        if not isinstance(value, date):
            return ""
        title = self.title(value) if isinstance(value, datetime) else value.isoformat()
        # isoformat, month and day names and digits need no escaping; the zone name is escaped.
        return mark_safe(  # noqa: S308
            f'<time datetime="{value.isoformat()}" title="{title}" class="when">'
            f"{self.absolute(value, with_time=False)}</time>"
        )

    def ago(self, value: datetime | None) -> SafeString | str:
        if not isinstance(value, datetime):
            return ""
        if value.year >= 9999:
            return NO_END
        return mark_safe(  # noqa: S308 - as in when_date
            f'<time datetime="{value.isoformat()}" title="{self.absolute(value)} · {self.title(value)}" '
            f'class="when">{relative(value, now=self.now)}</time>'
        )


def absolute(value: datetime | date, *, with_time: bool = True, now: datetime | None = None) -> str:
    return Clock(now).absolute(value, with_time=with_time)


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


@register.filter(is_safe=True)
def when(value: datetime | None) -> SafeString | str:
    if not isinstance(value, datetime):
        return when_date(value)
    clock = Clock()
    hint = relative(value)
    if not hint:
        return format_html('<time datetime="{}" class="when">{}</time>', value.isoformat(), clock.absolute(value))
    return format_html('<time datetime="{}" title="{}" class="when">{} <span class="when-rel">· {}</span></time>',
                       value.isoformat(), mark_safe(clock.title(value)),  # noqa: S308 - zone name escaped
                       clock.absolute(value), hint)


@register.filter(is_safe=True)
def when_date(value: datetime | date | None, now: datetime | None = None) -> SafeString | str:
    return Clock(now).when_date(value)


@register.filter(is_safe=True)
def ago(value: datetime | None, now: datetime | None = None) -> SafeString | str:
    return Clock(now).ago(value)


@register.filter
def device(user_agent: str | None) -> str:
    """A user agent as a person reads it ("Safari 17 on macOS"), see ``core.user_agents``."""
    from core.user_agents import describe

    return describe(user_agent or "")
