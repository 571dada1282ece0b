"""One confirmation for destructive actions: the page without JavaScript (names who, keeps the
options, acts only when posted back) and the dialog with it (Cancel does nothing, Confirm acts)."""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path

import pytest
from django.test import Client

from tests.accounts.app_user_data import live_sessions, make_session, make_user, reload
from tests.conftest import login_verified
from tests.console.test_users_browser import browser_page  # noqa: F401  (the fixture)

pytestmark = pytest.mark.django_db
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def _carried(body: str) -> dict[str, str]:
    form = body.split('id="confirm-page"', 1)[1].split("</form>", 1)[0]
    return {unescape(n): unescape(v) for n, v in re.findall(r'name="([^"]+)" value="([^"]*)"', form)
            if n != "csrfmiddlewaretoken"}


def test_without_javascript_the_ban_asks_on_a_page_first(staff, acme):
    client = staff("admin")
    ann = make_user(acme, "ann@acme.test", name="Ann")
    url = f"/t/acme/users/{ann.pk}/ban/"
    page = client.post(url, {"confirm_step": "page", "duration": "7d", "reason": "spam"})
    assert page.status_code == 200
    body = page.content.decode()
    assert "Ban ann@acme.test?" in body and "7 days" in body and "spam" in body
    assert reload(acme, ann).banned_until is None
    carried = _carried(body)
    assert carried == {"duration": "7d", "reason": "spam"}
    done = client.post(url, carried)
    assert done.status_code == 302
    assert reload(acme, ann).ban_reason == "spam"


def test_every_destructive_button_of_the_user_page_carries_the_step(staff, acme):
    client = staff("admin")
    ann = make_user(acme, "ann@acme.test")
    make_session(acme, ann)
    body = client.get(f"/t/acme/users/{ann.pk}/").content.decode()
    for form in re.findall(r"<form[^>]*>.*?</form>", body, re.S):
        if "data-confirm=" in form:
            assert 'name="confirm_step" value="page"' in form, form[:200]
    assert "window.confirm" not in Path("static/js/app.js").read_text()


def test_the_page_names_a_staff_member_and_a_tenant(staff, staff_factory, acme, as_staff):
    root = as_staff(staff_factory("root@console.test", superuser=True))
    member = staff_factory("bob@console.test")
    body = root.post(f"/staff/{member.pk}/deactivate/", {"confirm_step": "page"}).content.decode()
    assert "Deactivate the staff member bob@console.test?" in body
    body = root.post("/tenants/acme/suspend/", {"confirm_step": "page"}).content.decode()
    assert "Suspend the tenant acme?" in body


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_dialog_cancels_and_confirms(live_server, browser_page, make_tenant, staff_factory):  # noqa: F811
    context, page, console_errors = browser_page
    acme = make_tenant("acme", name="Acme Corp")
    ann = make_user(acme, "ann@acme.test", name="Ann Example")
    make_session(acme, ann)
    make_session(acme, ann)
    admin = staff_factory("admin@console.test", tenants={acme: "admin"})
    client = login_verified(Client(), admin)
    context.add_cookies([{"name": "adminpanel_session", "value": client.cookies["adminpanel_session"].value,
                          "url": live_server.url}])
    page.goto(f"{live_server.url}/t/acme/users/{ann.pk}/")
    end_all = page.locator("form[action$='/sign-out/'] button[data-confirm]").first
    end_all.click()
    dialog = page.locator("#confirm-dialog")
    assert dialog.is_visible() and "ann@acme.test" in dialog.inner_text()
    page.screenshot(path=str(SHOTS / "confirm-dialog.png"))
    dialog.locator("button[value=cancel]").click()
    assert not dialog.is_visible()
    assert live_sessions(acme, ann) == 2
    end_all.click()
    dialog.locator("[data-confirm-ok]").click()
    page.wait_for_load_state("load")
    page.wait_for_selector(".flash-stack")
    assert live_sessions(acme, ann) == 0
    assert not console_errors
