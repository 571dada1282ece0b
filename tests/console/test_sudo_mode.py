"""Sudo mode: the fresh-code step names the pending action and completes it after the code,
with everything the form carried (a ban keeps its duration and reason)."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from html import unescape
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from django.utils import timezone

from console import sudo
from tests.accounts.app_user_data import make_user, reload
from tests.accounts.helpers import code_for
from tests.conftest import login_verified
from tests.console.test_users_browser import browser_page  # noqa: F401  (the fixture)

pytestmark = pytest.mark.django_db
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def _fields(body: str) -> list[tuple[str, str]]:
    form = body.split('id="sudo-continue"', 1)[1].split("</form>", 1)[0]
    return [(unescape(n), unescape(v)) for n, v in re.findall(r'name="([^"]+)" value="([^"]*)"', form)]


def _stale_admin(staff_factory, acme):
    admin = staff_factory("sudo@console.test", tenants={acme: "admin"})
    return admin, login_verified(Client(), admin, otp_age_seconds=3600)


def test_a_ban_after_a_fresh_code_is_applied_with_its_duration_and_reason(acme, staff_factory):
    admin, client = _stale_admin(staff_factory, acme)
    ann = make_user(acme, "ann@acme.test", name="Ann")
    page = f"/t/acme/users/{ann.pk}/"
    response = client.post(f"{page}ban/", {"duration": "7d", "reason": "chargeback fraud"},
                           HTTP_REFERER=f"http://testserver{page}")
    target = urlsplit(response["Location"])
    assert target.path == "/account/reverify/" and parse_qs(target.query)["next"] == [page]
    assert reload(acme, ann).banned_until is None  # nothing happened yet

    step = client.get(response["Location"]).content.decode()
    assert "Ban ann@acme.test" in step and "7 days" in step and "chargeback fraud" in step

    key = parse_qs(target.query)["pending"][0]
    device = admin.totpdevice_set.get()
    done = client.post("/account/reverify/", {"code": code_for(device), "next": page, "pending": key})
    assert done.status_code == 200
    body = done.content.decode()
    assert f'action="{page}ban/"' in body and "data-submit-now" in body
    fields = _fields(body)
    assert ("duration", "7d") in fields and ("reason", "chargeback fraud") in fields

    # What the page posts (app.js at once, or the button): the ban itself, now with a fresh code.
    applied = client.post(f"{page}ban/", dict(fields))
    assert applied.status_code == 302 and applied["Location"] == page
    ann = reload(acme, ann)
    assert ann.ban_reason == "chargeback fraud"
    assert abs(ann.banned_until - (timezone.now() + timedelta(days=7))) < timedelta(minutes=1)

    # Single use: the same key does not come back.
    assert sudo.SESSION_KEY not in client.session or key not in client.session[sudo.SESSION_KEY]


def test_a_wrong_code_keeps_the_pending_action_and_applies_nothing(acme, staff_factory):
    admin, client = _stale_admin(staff_factory, acme)
    ann = make_user(acme, "ann@acme.test")
    response = client.post(f"/t/acme/users/{ann.pk}/delete/", {"mode": "soft", "confirm": "on"})
    key = parse_qs(urlsplit(response["Location"]).query)["pending"][0]
    bad = client.post("/account/reverify/", {"code": "000000", "next": "/", "pending": key})
    assert bad.status_code == 200
    body = bad.content.decode()
    assert "Delete ann@acme.test" in body and "Soft delete" in body and "That code is not valid" in body
    assert reload(acme, ann).deleted_at is None


def test_a_pending_action_expires(acme, staff_factory, monkeypatch):
    admin, client = _stale_admin(staff_factory, acme)
    ann = make_user(acme, "ann@acme.test")
    response = client.post(f"/t/acme/users/{ann.pk}/ban/", {"duration": "24h"})
    assert "pending=" in response["Location"]
    later = int(time.time()) + sudo.PENDING_SECONDS + 5
    monkeypatch.setattr(sudo, "_now", lambda: later)
    page = client.get(response["Location"]).content.decode()
    assert "Ban ann@acme.test" not in page and "needs a fresh code" in page


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_sudo_journey_in_a_browser(live_server, browser_page, make_tenant, staff_factory):  # noqa: F811
    context, page, console_errors = browser_page
    acme = make_tenant("acme", name="Acme Corp")
    ann = make_user(acme, "ann@acme.test", name="Ann Example")
    admin = staff_factory("sudo@console.test", tenants={acme: "admin"})
    client = login_verified(Client(), admin, otp_age_seconds=3600)
    context.add_cookies([{"name": "adminpanel_session", "value": client.cookies["adminpanel_session"].value,
                          "url": live_server.url}])
    page.goto(f"{live_server.url}/t/acme/users/{ann.pk}/")
    page.select_option("#ban-duration", "30d")
    page.fill("#ban-reason", "spam wave of 1 December")
    page.click("#ban-submit")
    assert "Ban ann@acme.test" in page.locator("#confirm-dialog").inner_text()
    page.click("#confirm-dialog [data-confirm-ok]")
    page.wait_for_url("**/account/reverify/**")
    assert "Ban ann@acme.test" in page.locator("#sudo-action").inner_text()
    assert "30 days" in page.locator("#sudo-action").inner_text()
    page.screenshot(path=str(SHOTS / "sudo-01-code.png"), full_page=True)
    page.fill("input[name=code]", code_for(admin.totpdevice_set.get()))
    page.click(".auth-card button[type=submit]")
    page.wait_for_url(f"**/t/acme/users/{ann.pk}/")
    page.screenshot(path=str(SHOTS / "sudo-02-done.png"), full_page=True)
    assert "banned" in page.locator(".flash-stack").inner_text()
    ann = reload(acme, ann)
    assert ann.ban_reason == "spam wave of 1 December"
    assert abs(ann.banned_until - (timezone.now() + timedelta(days=30))) < timedelta(minutes=2)
    assert not console_errors
