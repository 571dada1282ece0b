"""The users console in a real browser (Playwright, Debian's Chromium): search as you type,
filter, select three users, ban them for 24 hours, see the badges, unban, invite someone, find
the mail in the outbox, export the CSV. Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import csv
import io
import os
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import AppUser
from outbox.models import OutboxMessage
from tenants import db as tenant_db
from tests.accounts.app_user_data import make_factor, make_session, make_user, make_users
from tests.conftest import login_verified

SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture
def browser_page():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian's Chromium is not installed")
    SHOTS.mkdir(parents=True, exist_ok=True)
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API runs an event loop
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1360, "height": 900}, accept_downloads=True)
            page = context.new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            yield context, page, errors
            context.close()
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"users-{name}.png"), full_page=True)


def _populate(tenant):
    now = timezone.now()
    people = [
        ("ada.lovelace@analytical.io", "Ada Lovelace", "admin"), ("alan.turing@bletchley.uk", "Alan Turing", "user"),
        ("grace.hopper@navy.mil", "Grace Hopper", "user"), ("linus@kernel.org", "Linus Torvalds", "user"),
        ("margaret@apollo.nasa", "Margaret Hamilton", "user"), ("ken@bell-labs.com", "Ken Thompson", "user"),
    ]
    for i, (email, name, role) in enumerate(people):
        user = make_user(tenant, email, name=name, role=role, created_at=now - timedelta(days=40 - i),
                         last_sign_in_at=now - timedelta(hours=3 * i + 1), mfa_enabled=i % 2 == 0)
        if i == 2:
            make_session(tenant, user, user_agent="Mozilla/5.0 (Macintosh) Firefox/140.0", ip_address="198.51.100.23")
            make_session(tenant, user, user_agent="Mozilla/5.0 (iPhone) Mobile Safari/18", ip_address="203.0.113.80")
            make_factor(tenant, user, friendly_name="iPhone authenticator")
    make_users(tenant, 8, prefix="spammer", domain="spam.test")
    make_user(tenant, "newbie@startup.dev", name="Nina Newbie", email_confirmed_at=None, password="x")
    make_user(tenant, "invited@partner.co", name="Ian Vited", email_confirmed_at=None, invited_at=now)
    make_user(tenant, "troll@forum.net", name="Troll", banned_until=now + timedelta(days=6), ban_reason="abuse")
    make_users(tenant, 70, prefix="customer", domain="shop.test")


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_users_console_journey(live_server, browser_page, make_tenant, staff_factory):
    context, page, console_errors = browser_page
    acme = make_tenant("acme", name="Acme Corp")
    _populate(acme)
    root = staff_factory("root@console.test", superuser=True, name="Root")
    client = login_verified(Client(), root)
    cookie = client.cookies["adminpanel_session"].value
    context.add_cookies([{"name": "adminpanel_session", "value": cookie, "url": live_server.url}])
    base = live_server.url

    # The list.
    page.goto(base + "/t/acme/users/")
    assert page.locator("table.users tbody tr").count() == 50
    assert "87" in page.locator("#users-count").inner_text()
    shot(page, "01-list")

    # Search as you type: the table updates in place and the URL follows.
    page.fill("#users-q", "spam")
    page.wait_for_url(re.compile(r"q=spam"))
    page.wait_for_function("document.querySelectorAll('table.users tbody tr').length === 8")
    assert "status=" not in page.url and "sort=" not in page.url  # empty and default values are not pushed
    shot(page, "02-search")

    # Filter: active only (the select submits through htmx).
    page.select_option("#f-status", "active")
    page.wait_for_url(re.compile(r"status=active"))
    page.wait_for_load_state("networkidle")
    assert page.locator("table.users tbody tr").count() == 8

    # Select three and ban them for 24 hours.
    boxes = page.locator("[data-row-check]")
    for i in range(3):
        boxes.nth(i).check()
    assert page.locator("[data-selected-count]").inner_text() == "3 selected"
    chosen = [page.locator("table.users tbody tr").nth(i).locator(".cell-primary").inner_text() for i in range(3)]
    page.select_option("#batch-action", "ban")
    shot(page, "03-selected")
    page.click("#batch-apply")
    page.wait_for_selector("#batch-preview")
    page.select_option("#ban-duration", "24h")
    page.fill("#ban-reason", "Spam wave")
    shot(page, "04-ban-options")
    page.click("#batch-preview")
    page.wait_for_selector("#job-start")
    assert "Ban 3 users?" in page.locator("h1").inner_text()
    shot(page, "04-confirm-ban")
    page.click("#job-start")  # three users: done in the request
    page.wait_for_selector("#job-progress[data-job-state=done]")
    assert page.locator("[data-processed]").inner_text() == "3"
    shot(page, "05-batch-result")

    # Back to the list: the three carry "Banned until ..." badges.
    page.goto(base + "/t/acme/users/?q=spam&status=active")
    page.select_option("#f-status", "")
    page.wait_for_load_state("networkidle")
    page.wait_for_function("document.querySelectorAll('table.users tbody tr').length === 8")
    for email in chosen:
        row = page.locator("table.users tbody tr", has_text=email)
        assert "Banned until" in row.locator(".badge").inner_text()
    shot(page, "06-banned-badges")
    alias = tenant_db.using(acme)
    assert AppUser.objects.using(alias).filter(email__in=chosen, banned_until__isnull=False).count() == 3

    # Unban them: filter on banned + search, select the page, unban.
    page.select_option("#f-status", "banned")
    page.wait_for_url(re.compile(r"status=banned"))
    page.wait_for_function("document.querySelectorAll('table.users tbody tr').length === 3")
    page.check("[data-select-page]")
    page.select_option("#batch-action", "unban")
    page.click("#batch-apply")
    page.click("#job-start")
    page.wait_for_selector("#job-progress[data-job-state=done]")
    assert page.locator("[data-processed]").inner_text() == "3"
    assert not AppUser.objects.using(alias).filter(email__in=chosen, banned_until__isnull=False).exists()

    # Invite someone, then find the mail in the outbox.
    page.goto(base + "/t/acme/users/")
    page.click("text=Invite user")
    page.fill("#id_email", "Hedy.Lamarr@Inventors.org")
    page.fill("#id_name", "Hedy Lamarr")
    shot(page, "07-invite")
    page.click("button:has-text('Send invitation')")
    page.wait_for_selector("h1:has-text('hedy.lamarr@inventors.org')")
    assert "Invited" in page.locator("h1 .badge").inner_text()
    shot(page, "08-invited-detail")
    mail = OutboxMessage.objects.get(kind="invite", to="hedy.lamarr@inventors.org")
    assert "/p/acme/accept/" in mail.body
    response = page.goto(base + "/mail/")
    if response is not None and response.status == 200:
        assert "hedy.lamarr@inventors.org" in page.content()
        shot(page, "09-outbox")

    # A user with sessions and factors, as support or admin sees it.
    grace = AppUser.objects.using(alias).get(email="grace.hopper@navy.mil")
    page.goto(base + f"/t/acme/users/{grace.pk}/")
    assert page.locator("#sessions-h .count").inner_text() == "2"
    shot(page, "10-detail")

    # Export the current filter as CSV.
    page.goto(base + "/t/acme/users/?q=shop.test&sort=email")
    with page.expect_download() as download_info:
        page.click("#export-link")
    download = download_info.value
    target = SHOTS.parent / "users-export.csv"
    download.save_as(str(target))
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert len(rows) == 70 and rows[0]["email"] == "customer00000@shop.test"

    # Invitations page.
    page.goto(base + "/t/acme/invitations/")
    assert page.locator("#invitations tbody tr").count() == 2
    shot(page, "11-invitations")

    assert console_errors == [], console_errors


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_batch_bar_only_with_a_selection(live_server, browser_page, make_tenant, staff_factory):
    context, page, console_errors = browser_page
    acme = make_tenant("acme", name="Acme Corp")
    make_users(acme, 5, prefix="member", domain="team.test")
    root = staff_factory("root@console.test", superuser=True, name="Root")
    cookie = login_verified(Client(), root).cookies["adminpanel_session"].value
    context.add_cookies([{"name": "adminpanel_session", "value": cookie, "url": live_server.url}])
    page.goto(live_server.url + "/t/acme/users/")
    bar, label = page.locator("[data-bulk]"), page.locator("[data-selected-count]")
    assert not bar.is_visible()  # nothing selected: no batch bar
    box = page.locator("[data-row-check]").first
    box.check()
    assert bar.is_visible() and label.inner_text() == "1 selected"
    page.select_option("#batch-action", "ban")
    box.uncheck()
    assert not bar.is_visible()

    # A submit with nothing selected says so in red; the next change of selection resets it.
    page.evaluate("document.getElementById('batch-form').requestSubmit()")
    assert label.text_content() == "Select users first"
    assert "text-danger" in (label.get_attribute("class") or "")
    assert page.url.endswith("/t/acme/users/")  # no round trip
    box.check()
    assert label.inner_text() == "1 selected"
    assert "text-danger" not in (label.get_attribute("class") or "")

    # Every matching user as the scope keeps the bar even with no row ticked.
    page.select_option("#batch-scope", "all")
    box.uncheck()
    assert bar.is_visible() and label.inner_text() == "Every matching user"
    assert console_errors == [], console_errors
