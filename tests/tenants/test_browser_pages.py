"""Issue 6 pages in a real browser: tenants (with creation progress, failure and retry), settings,
mail templates, audit viewer, dashboard. Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import datetime as dt
import random
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from accounts.models import AppSession, AppUser
from audit import services as audit
from batchjobs import engine
from batchjobs.models import Job
from tenants import db as tenant_db
from tenants import services
from tenants.models import Tenant
from tests.conftest import login_verified

SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser(live_server, monkeypatch):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian's Chromium is not installed")
    # Playwright's sync API runs an event loop in this thread; set only for this test, so the
    # variable does not leak into the subprocesses other tests start (check --deploy).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        context = chromium.new_context(viewport={"width": 1360, "height": 900})
        errors: list[str] = []
        # Refused forms answer 400 on purpose; anything else logged as an error is a bug.
        context.on("console", lambda m: errors.append(m.text)
                   if m.type == "error" and "status of 400" not in m.text else None)
        yield context, errors
        # Drop while Playwright's loop still runs: Django keeps this thread's connections in
        # context-local storage while a loop runs, so the tenant aliases must be closed in the
        # same context that opened them (or the next test finds a stale connection).
        for tenant in Tenant.objects.all():
            tenant_db.drop_database(tenant)
        context.close()
        chromium.close()


def signed_in_page(context, live_server, user):
    """A page whose session passed password and TOTP (like conftest.login_verified)."""
    client = login_verified(Client(), user)
    context.add_cookies([{
        "name": settings.SESSION_COOKIE_NAME,
        "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
        "url": live_server.url,
    }])
    return context.new_page()


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"issue6-{name}.png"), full_page=True)


def seed_users(tenant: Tenant, n: int = 160) -> None:
    rnd = random.Random(6)
    now = timezone.now()
    users = []
    for i in range(n):
        created = now - dt.timedelta(days=rnd.randint(0, 95), hours=rnd.randint(0, 23))
        confirmed = created if rnd.random() > 0.12 else None
        users.append(AppUser(
            email=f"user{i}@{tenant.slug}.test", name=f"User {i}", created_at=created,
            email_confirmed_at=confirmed, invited_at=None if confirmed else created,
            last_sign_in_at=(now - dt.timedelta(days=rnd.randint(0, 40))) if confirmed else None,
            mfa_enabled=rnd.random() < 0.35,
            banned_until=now + dt.timedelta(days=3) if rnd.random() < 0.04 else None,
        ))
    AppUser.objects.using(tenant_db.using(tenant)).bulk_create(users)
    sessions = []
    for i, user in enumerate(users):
        if user.last_sign_in_at is None:
            continue
        for k in range(rnd.randint(0, 4)):
            created = now - dt.timedelta(days=rnd.randint(0, 60), hours=rnd.randint(0, 23))
            sessions.append(AppSession(user=user, token_hash=f"seed-{i}-{k}", created_at=created,
                                       last_seen_at=created, expires_at=created + dt.timedelta(days=1)))
    AppSession.objects.using(tenant_db.using(tenant)).bulk_create(sessions)


def test_tenants_pages_with_creation_progress_failure_and_retry(live_server, browser, staff_factory, monkeypatch):
    context, console_errors = browser
    root = staff_factory("root@console.test", superuser=True, name="Rita Root")
    acme = services.tenant_create(actor=root, slug="acme", name="Acme Corporation", metadata={"plan": "enterprise"})
    globex = services.tenant_create(actor=root, slug="globex", name="Globex")
    seed_users(acme, 40)
    services.tenant_suspend(actor=root, tenant=globex)
    old = services.tenant_create(actor=root, slug="umbrella", name="Umbrella")
    tenant_db.migrate_database(old, target=[("accounts", "0001_initial")])
    old.schema_version = tenant_db.applied_schema_version(old)
    old.save(update_fields=["schema_version"])
    page = signed_in_page(context, live_server, root)
    base = live_server.url

    page.goto(base + "/tenants/")
    assert page.locator("#tenants-table tbody tr").count() == 3
    assert "Behind" in page.locator('tr[data-slug="umbrella"]').inner_text()
    shot(page, "01-tenants-list")

    # Creation with visible progress: each step runs as its own request.
    page.goto(base + "/tenants/new/")
    page.fill("#id_slug", "Bad Slug!")
    page.fill("#id_name", "Initech")
    page.fill("#id_metadata", "{not json")
    page.click("#tenant-create-form button[type=submit]")
    page.wait_for_selector("#tenant-create-form .errorlist")
    page.wait_for_timeout(300)  # let the button's spinner fade out
    shot(page, "02-tenant-create-errors")
    page.fill("#id_slug", "initech")
    page.fill("#id_metadata", '{"plan": "startup", "region": "eu"}')
    page.click("#tenant-create-form button[type=submit]")
    page.wait_for_url(re.compile(r"/tenants/initech/$"))
    page.wait_for_selector("#provision-steps .flash-success", timeout=30_000)
    assert page.locator(".step-done").count() == 3
    shot(page, "03-tenant-create-progress-done")
    page.wait_for_selector("h1 .badge-success", timeout=10_000)  # the page refreshes itself
    assert "Tenant initech is active." in page.locator(".flash-stack").inner_text()
    assert page.locator("#provision-steps").count() == 0
    shot(page, "03b-tenant-created")
    assert Tenant.objects.get(slug="initech").status == Tenant.Status.ACTIVE

    # A failing database server: the error is shown, Retry resumes.
    real_create = tenant_db.create_database

    def broken(tenant):
        raise tenant_db.TenantDatabaseError(
            'could not create database "adminpanel_t_hooli": permission denied (role lacks CREATEDB)')

    monkeypatch.setattr(tenant_db, "create_database", broken)
    page.goto(base + "/tenants/new/")
    page.fill("#id_slug", "hooli")
    page.fill("#id_name", "Hooli")
    page.click("#tenant-create-form button[type=submit]")
    page.wait_for_selector("#provision-steps .callout-danger", timeout=30_000)
    assert "permission denied" in page.locator("#provision-steps").inner_text()
    shot(page, "04-tenant-create-failed")
    monkeypatch.setattr(tenant_db, "create_database", real_create)
    page.click("#provision-steps button:has-text('Retry')")
    page.wait_for_selector("#provision-steps .flash-success", timeout=30_000)
    page.wait_for_selector("h1 .badge-success", timeout=10_000)
    shot(page, "05-tenant-create-retried")
    assert Tenant.objects.get(slug="hooli").status == Tenant.Status.ACTIVE

    # Detail, edit, lifecycle.
    page.goto(base + "/tenants/acme/")
    shot(page, "06-tenant-detail")
    page.fill("#id_metadata", "[1, 2")
    page.click("#tenant-edit-form button[type=submit]")
    page.wait_for_selector("#tenant-edit-form .errorlist")
    page.goto(base + "/tenants/globex/")
    page.click("form[action$='/delete/'] button")
    page.click("#confirm-dialog [data-confirm-ok]")  # the confirmation dialog
    page.wait_for_selector("#tenant-purge-form")
    page.fill("#tenant-purge-form input[name=confirm_slug]", "glob")
    page.click("#tenant-purge-form button[type=submit]")
    page.wait_for_selector("#tenant-purge-form .errorlist")
    shot(page, "07-tenant-deleted-purge-refused")

    page.goto(base + "/tenants/")
    page.click("button:has-text('Migrate all')")
    page.click("#confirm-dialog [data-confirm-ok]")
    page.wait_for_selector("#job-progress")  # a job on the runner; worked here, as a worker would
    engine.run(Job.objects.get(kind=Job.Kind.MIGRATE).pk, worker_id="test")
    page.wait_for_selector("#job-progress[data-job-state=done]")  # htmx polls, then reloads once
    page.wait_for_selector("#job-outcomes")
    assert "umbrella" in page.locator("#job-outcomes").inner_text()
    shot(page, "08-tenants-migrate-all")
    assert not console_errors, console_errors


def test_settings_templates_audit_and_dashboard(live_server, browser, staff_factory):
    context, console_errors = browser
    root = staff_factory("root@console.test", superuser=True)
    acme = services.tenant_create(actor=root, slug="acme", name="Acme Corporation")
    ada = staff_factory("ada@console.test", name="Ada Admin", tenants={acme: "admin"})
    bob = staff_factory("bob@console.test", name="Bob Support", tenants={acme: "support"})
    seed_users(acme)
    users = list(AppUser.objects.using(tenant_db.using(acme)).order_by("email")[:6])
    for i, user in enumerate(users):
        audit.record(event="app_user.ban" if i % 2 else "app_user.update", actor=ada, tenant=acme, target=user,
                     before={"name": user.name, "banned_until": None},
                     after={"name": user.name + (" Jr" if i % 2 == 0 else ""),
                            "banned_until": "2030-01-01T00:00:00+00:00" if i % 2 else None},
                     data={"reason": "spam wave"} if i % 2 else {})
    audit.record(event="app_user.sign_out", actor=bob, tenant=acme, target=users[0], impersonator=ada,
                 action=audit.ACCESS, data={"sessions_ended": 3})
    page = signed_in_page(context, live_server, ada)
    base = live_server.url

    page.goto(base + "/t/acme/")
    page.wait_for_selector("svg.chart")
    shot(page, "09-dashboard-30")
    page.click(".segmented a:has-text('90 days')")
    page.wait_for_url(re.compile(r"days=90"))
    assert page.locator("rect.chart-bar").count() == 90
    shot(page, "10-dashboard-90")

    page.goto(base + "/t/acme/settings/")
    page.fill("#id_magic_link_minutes", "60")
    page.fill("#id_default_role", "owner")
    page.fill("#id_allowed_email_domains", "acme.test\nnot a domain")
    page.click("#tenant-settings-form button[type=submit]")
    page.wait_for_selector("#tenant-settings-form .errorlist")
    shot(page, "11-settings-errors")
    page.fill("#id_magic_link_minutes", "5")
    page.fill("#id_default_role", "user")
    page.fill("#id_allowed_email_domains", "acme.test\nacme.example")
    page.fill("#id_sender_name", "Acme Support")
    page.click("#tenant-settings-form button[type=submit]")
    page.wait_for_selector(".flash-success")
    shot(page, "12-settings-saved")

    page.goto(base + "/t/acme/settings/emails/invite/")
    page.fill("#id_subject", "Welcome aboard {{ tenant_name }}")
    page.fill("#id_body", "Hi{{ name }},\n\n{{ sender_name }} invited you to {{ tenant_name }}.\n\n"
              "{{ link }}\n\nThe link expires in {{ expires_in }}.")
    page.click("#email-template-form button:has-text('Preview')")
    page.wait_for_selector("#email-preview .mail-subject:has-text('Welcome aboard Acme')")
    shot(page, "13-email-template-preview")
    page.click("#email-template-form button:has-text('Save')")
    page.wait_for_selector(".flash-success")
    shot(page, "14-email-template-saved")

    page.goto(base + "/t/acme/audit/")
    page.wait_for_selector("#audit-table")
    shot(page, "15-tenant-audit")
    page.fill("#f-event", "app_user.ban")
    page.click("#audit-filters button[type=submit]")
    page.wait_for_url(re.compile(r"event=app_user.ban"))
    page.wait_for_function("document.querySelectorAll('#audit-table tbody tr[data-event=\"app_user.update\"]').length === 0")
    shot(page, "16-tenant-audit-filtered")

    root_page = signed_in_page(context, live_server, root)
    root_page.goto(base + "/audit/")
    root_page.wait_for_selector("#audit-table")
    shot(root_page, "17-instance-audit")
    root_page.screenshot(path=str(SHOTS / "issue6-17b-instance-audit-top.png"))  # the first rows, legible
    root_page.check("#f-imp")
    root_page.click("#audit-filters button[type=submit]")
    root_page.wait_for_url(re.compile(r"impersonated=1"))
    shot(root_page, "18-instance-audit-impersonated")
    assert not console_errors, console_errors
