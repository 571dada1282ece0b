"""Which time zone a page's times are shown in: the staff member's setting, else the browser's.

``app.js`` keeps the browser's IANA zone in the ``tz`` cookie; ``activate_time_zone`` (a
middleware) activates the signed-in staff member's ``time_zone`` when set, else that cookie, else
UTC. An unknown name is ignored.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from functools import lru_cache
from urllib.parse import unquote

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

COOKIE = "tz"


@lru_cache(maxsize=1)
def names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def valid(name: str) -> bool:
    return bool(name) and len(name) <= 64 and name in names()


def activate_time_zone(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
    def middleware(request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        chosen = getattr(user, "time_zone", "") if user is not None and user.is_authenticated else ""
        name = chosen if valid(chosen) else unquote(request.COOKIES.get(COOKIE, ""))
        if valid(name):
            timezone.activate(zoneinfo.ZoneInfo(name))
        else:
            timezone.deactivate()
        try:
            return get_response(request)
        finally:
            timezone.deactivate()

    return middleware
