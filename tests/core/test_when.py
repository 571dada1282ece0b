"""The one date/time component: absolute time in the staff member's zone, the year when it is not
this one, a relative hint ("just now", "3 hours ago", "in 6 days"), the 9999 sentinel, and the
zone from the staff setting or the browser's cookie."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, date, datetime, timedelta

import pytest
from django.template import Context, Template
from django.utils import timezone

from accounts.app_users.services import ban_until_for
from accounts.models import BANNED_FOREVER
from core.errors import Invalid
from core.templatetags.when import absolute, relative


def render(source: str, **context) -> str:
    return Template(source).render(Context(context))


def test_absolute_shows_the_year_only_when_it_is_not_this_one():
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert absolute(datetime(2026, 3, 4, 9, 5, tzinfo=UTC), now=now) == "Mar 4, 09:05"
    assert absolute(datetime(2025, 3, 4, 9, 5, tzinfo=UTC), now=now) == "Mar 4, 2025, 09:05"
    assert absolute(datetime(3000, 1, 1, tzinfo=UTC), now=now) == "Jan 1, 3000, 00:00"
    assert absolute(BANNED_FOREVER, now=now) == "no end date"
    assert absolute(date(2024, 2, 29), with_time=False, now=now) == "Feb 29, 2024"


def test_relative_hint():
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert relative(now - timedelta(seconds=20), now=now) == "just now"
    assert relative(now - timedelta(minutes=1), now=now) == "1 minute ago"
    assert relative(now - timedelta(hours=3, minutes=5), now=now) == "3 hours ago"
    assert relative(now + timedelta(days=6, hours=2), now=now) == "in 6 days"
    assert relative(now - timedelta(days=800), now=now) == "2 years ago"


def test_the_filters_render_one_time_element_in_the_active_zone():
    # A day and a few hours ago whatever the hour the suite runs at ("1 day ago"; a fixed 10:44
    # yesterday was "13 hours ago" just after midnight).
    value = (timezone.now() - timedelta(days=1, hours=3)).replace(second=0, microsecond=0)
    with timezone.override(zoneinfo.ZoneInfo("Asia/Tokyo")):
        out = render("{{ v|when }}", v=value)
        local = timezone.localtime(value)
    assert out.startswith('<time datetime="') and "Asia/Tokyo" in out
    assert f"{local:%H:%M}" in out and "1 day ago" in out
    assert render("{{ v|when|default:'—' }}", v=None) == "—"
    assert "just now" in render("{{ v|ago }}", v=timezone.now())


def test_a_ban_until_9999_is_refused_with_a_clear_message():
    with pytest.raises(Invalid, match="Indefinitely"):
        ban_until_for("until", until=datetime(9999, 12, 31, tzinfo=UTC))
    assert ban_until_for("until", until=datetime(3000, 1, 1, tzinfo=UTC)).year == 3000


@pytest.mark.django_db
def test_the_zone_comes_from_the_staff_setting_else_the_browser(staff_factory, as_staff):
    from accounts.models import User

    client = as_staff(staff_factory("support@console.test"))
    client.cookies["tz"] = "America%2FNew_York"
    page = client.get("/account/security/").content.decode()
    assert "America/New_York" in page
    response = client.post("/account/time-zone/", {"time_zone": "Asia/Kolkata"})
    assert response.status_code == 302
    assert "Asia/Kolkata" in client.get("/account/security/").content.decode()
    bad = client.post("/account/time-zone/", {"time_zone": "Mars/Olympus"}, follow=True)
    assert "Choose a time zone from the list." in bad.content.decode()
    assert User.objects.get(email="support@console.test").time_zone == "Asia/Kolkata"
