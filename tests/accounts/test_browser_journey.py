"""The staff journey in a real browser (Playwright driving Debian's Chromium)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tenants import db as tenant_db
from tenants.models import Tenant
from tests.accounts.helpers import code_from_base32

SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
EMAIL = "founder@example.com"
PASSWORD = "journey-passphrase-2024!"


@pytest.fixture
def browser_page(monkeypatch):
    # Playwright's sync API runs an event loop in this thread; the ORM calls of the test and its
    # fixtures would be refused as "async". Only while the browser runs (never leaked further).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian's Chromium is not installed")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        yield page, errors
        context.close()
        browser.close()


@pytest.fixture
def drop_default_tenant():
    yield
    for tenant in Tenant.objects.filter(is_default=True):
        tenant_db.drop_database(tenant)


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"staff-{name}.png"), full_page=True)


def sign_in_password(page, base: str) -> None:
    page.goto(base + "/login/")
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/login/verify/"))


def sign_out(page) -> None:
    page.click("header .topbar-user button[type=submit]")
    page.wait_for_url(re.compile(r"/login/$"))


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_setup_sign_in_enrol_backup_codes_journey(live_server, browser_page, drop_default_tenant):
    page, console_errors = browser_page
    base = live_server.url

    # First run: every URL leads to setup.
    page.goto(base + "/staff/")
    assert page.url.endswith("/setup/")
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=name]", "Fran Founder")
    page.fill("input[name=password]", "short")
    page.fill("input[name=password_confirm]", "short")
    page.click("button[type=submit]")
    assert page.locator(".errorlist").first.is_visible()
    shot(page, "01-setup-errors")
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=password_confirm]", PASSWORD)
    shot(page, "02-setup")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/login/\?email="))
    assert page.input_value("input[name=email]") == EMAIL
    shot(page, "03-login")

    # A wrong password: a clear, generic answer.
    page.fill("input[name=password]", "not-the-password")
    page.click("button[type=submit]")
    assert "The email or password is not correct." in page.inner_text("#login-error")
    shot(page, "04-login-wrong")

    # First sign-in: password, then forced enrolment.
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/login/enroll/"))
    assert page.locator("#totp-qr svg").is_visible()
    shot(page, "05-enrol")
    secret = page.get_attribute("#totp-secret", "data-totp-secret")
    page.fill("input[name=code]", code_from_base32(secret))
    page.click("form[action='/login/enroll/'] button[type=submit]")
    page.wait_for_selector("#backup-codes")
    codes = [c.strip() for c in page.locator("#backup-codes li").all_inner_texts()]
    assert len(codes) == 10
    shot(page, "06-backup-codes")
    with page.expect_download() as download:
        page.click("[data-download-codes]")
    assert codes[0] in Path(download.value.path()).read_text()
    page.click("#codes-continue")
    page.wait_for_url(base + "/")
    assert "Your tenants" in page.inner_text("main")
    assert page.locator("[data-tenant=default]").is_visible()
    shot(page, "07-home")

    page.goto(base + "/account/security/")
    shot(page, "08-account-security")

    # Invite a colleague; the invitation shows in the outbox, its link sets a password.
    page.goto(base + "/staff/")
    page.fill("#invite-card input[name=email]", "ada@example.com")
    page.fill("#invite-card input[name=name]", "Ada Support")
    page.select_option("#invite-card select[name=tenant]", "default")
    page.select_option("#invite-card select[name=role]", "support")
    page.click("#invite-card button[type=submit]")
    page.wait_for_url(re.compile(r"/staff/[0-9a-f-]{36}/$"))
    assert "Invitation sent to ada@example.com." in page.inner_text(".flash-stack")
    shot(page, "09-staff-member")
    page.goto(base + "/staff/")
    shot(page, "10-staff")
    page.goto(base + "/t/default/admins/")
    assert "ada@example.com" in page.inner_text("#tenant-admins-table")
    shot(page, "10b-tenant-staff")
    page.goto(base + "/mail/")
    shot(page, "11-mail")
    page.click("#mail-table a")
    link = page.locator("#mail-body a").first.get_attribute("href")
    shot(page, "12-mail-message")
    guest = page.context.browser.new_context(viewport={"width": 1280, "height": 860})
    invitee = guest.new_page()
    invitee.goto(base + "/staff/accept/" + link.rstrip("/").rsplit("/", 1)[1] + "/")
    assert "ada@example.com" in invitee.inner_text("main")
    shot(invitee, "13-accept-invitation")
    guest.close()

    # Sign out, then in again with the authenticator (the enrolment code is spent: next one).
    sign_out(page)
    assert page.locator(".flash-stack .flash").first.inner_text() == "You are signed out."
    page.goto(base + "/")
    assert "/login/" in page.url
    sign_in_password(page, base)
    shot(page, "14-verify")
    page.fill("input[name=code]", code_from_base32(secret, steps_ahead=1))
    page.click("main form button[type=submit]")
    page.wait_for_url(base + "/")
    sign_out(page)

    # A backup code signs in once.
    sign_in_password(page, base)
    page.click("text=Use a backup code instead")
    page.wait_for_url(re.compile(r"method=backup"))
    page.fill("input[name=code]", codes[0])
    shot(page, "15-backup-code")
    page.click("main form button[type=submit]")
    page.wait_for_url(base + "/")
    sign_out(page)
    sign_in_password(page, base)
    page.goto(base + "/login/verify/?method=backup")
    page.fill("input[name=code]", codes[0])
    page.click("main form button[type=submit]")
    assert "That backup code is not valid." in page.inner_text(".errorlist")
    assert "/login/verify/" in page.url
    shot(page, "16-backup-code-reused")
    assert not console_errors, console_errors
