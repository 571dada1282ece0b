"""Every console and portal page in one browser, at 1440 px and 390 px, light and dark.

On each page: a screenshot (test-artifacts/screenshots/sweep-<width>-<scheme>-<page>.png), no
horizontal overflow (``scrollWidth <= innerWidth``) and an axe-core scan (the vendored
``tests/vendor/axe-core/axe.min.js``, 4.11.0) with no serious or critical violation: both schemes
at 1440 px, light at 390 px (the phone layout's structure; its colours are the 1440 px ones). The data holds a
150-character name without spaces on every list and detail page, a banned, an invited and a
soft-deleted user, sessions, a factor and mail. One server, one browser: the whole sweep is one test.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone

from accounts.app_users.services import app_user_ban, app_user_delete, app_user_invite
from accounts.services.staff import staff_invite
from outbox.models import OutboxMessage
from tests.accounts.app_user_data import make_factor, make_session, make_user, make_users
from tests.conftest import login_verified
from tests.console.test_users_browser import browser_page  # noqa: F401  (the fixture)

AXE = Path(__file__).resolve().parents[1] / "vendor" / "axe-core" / "axe.min.js"
LONG = "L" + "o" * 148 + "g"  # 150 characters, no break opportunity
WIDTHS = (1440, 390)
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def _data(acme, root):
    now = timezone.now()
    ada = make_user(acme, "ada.lovelace@analytical.io", name="Ada Lovelace", role="admin",
                    last_sign_in_at=now - timedelta(hours=2), mfa_enabled=True)
    make_session(acme, ada, user_agent="Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 "
                 "(KHTML, like Gecko) Version/17.5 Safari/605.1.15", ip_address="198.51.100.23")
    make_factor(acme, ada, friendly_name="iPhone authenticator")
    long_user = make_user(acme, f"{'x' * 60}@{'d' * 60}.example", name=LONG, user_metadata={LONG: LONG})
    make_session(acme, long_user, user_agent="Mozilla/5.0 " + "A" * 200, ip_address="203.0.113.80")
    make_users(acme, 30, prefix="customer", domain="shop.test")
    troll = make_user(acme, "troll@forum.net", name="Troll")
    app_user_ban(actor=root, tenant=acme, user_id=troll.pk, until=now + timedelta(days=6), reason=LONG)
    gone = make_user(acme, "gone@example.test", name="Gone Person")
    app_user_delete(actor=root, tenant=acme, user_id=gone.pk)
    app_user_invite(actor=root, tenant=acme, email="invited@partner.co", name=LONG)
    staff_invite(actor=root, email="newstaff@console.test", name=LONG)
    return ada, long_user


def _pages(acme, ada, long_user, root):
    t = f"/t/{acme.slug}"
    mail = OutboxMessage.objects.order_by("-created_at").first()
    from accounts.models import User

    other = User.objects.exclude(pk=root.pk).first()
    from batchjobs import services as jobs
    from tests.jobs.conftest import everyone

    # The "job-done" page needs a finished job: this bans the 30 customer…@shop.test users for 7 days
    # before the first page is visited (the users pages show them "Banned until"; _data bans only troll).
    done = jobs.batch_start(actor=root, tenant=acme, action="ban", selection=everyone(q="shop.test"),
                            options={"duration": "7d", "reason": LONG}, inline=True)
    preview = jobs.batch_preview(actor=root, tenant=acme, action="unban", selection=everyone())
    pages = [
        ("home", "/"), ("tenants", "/tenants/"), ("tenant-new", "/tenants/new/"),
        ("tenant-detail", f"/tenants/{acme.slug}/"),
        ("staff", "/staff/"), ("staff-detail", f"/staff/{other.pk}/"),
        ("audit", "/audit/"), ("mail", "/mail/"), ("mail-detail", f"/mail/{mail.pk}/"),
        ("account-security", "/account/security/"), ("dashboard", f"{t}/"),
        ("users", f"{t}/users/"), ("users-sorted", f"{t}/users/?q=o&status=bogus"),
        ("user-detail", f"{t}/users/{ada.pk}/"), ("user-long", f"{t}/users/{long_user.pk}/"),
        ("user-new", f"{t}/users/new/"), ("user-invite", f"{t}/users/invite/"),
        ("users-import", f"{t}/users/import/"), ("invitations", f"{t}/invitations/"),
        ("tenant-admins", f"{t}/admins/"), ("tenant-audit", f"{t}/audit/"),
        ("impersonations", f"{t}/impersonations/"), ("settings", f"{t}/settings/"),
        ("settings-email", f"{t}/settings/emails/invite/"), ("api-keys", f"{t}/api-keys/"),
        ("account-tokens", "/account/tokens/"),
        ("jobs", f"{t}/jobs/"), ("job-done", f"{t}/jobs/{done.pk}/"), ("job-preview", f"{t}/jobs/{preview.pk}/"),
        ("not-found", "/no/such/page/"), ("portal-login", f"/p/{acme.slug}/login/"),
        ("portal-recover", f"/p/{acme.slug}/recover/"), ("portal-not-found", f"/p/{acme.slug}/nowhere/"),
    ]
    return pages


def _check(page, axe_source: str, *, axe: bool) -> tuple[int, int, list[str]]:
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    if not axe:
        return widths[0], widths[1], []
    page.evaluate("src => { if (!window.axe) { (0, eval)(src); } }", axe_source)  # CSP blocks a script tag
    result = page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ['violations']});
        return r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
          .map(v => v.id + ' (' + v.nodes.length + '): ' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | '));
    }""")
    return widths[0], widths[1], result


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_every_page_fits_and_passes_axe(live_server, browser_page, make_tenant, staff_factory):  # noqa: F811
    context, page, console_errors = browser_page
    acme = make_tenant("acme", name="Acme Corp")
    root = staff_factory("root@console.test", superuser=True, name="Root Admin")
    ada, long_user = _data(acme, root)
    client = login_verified(Client(), root)
    context.add_cookies([{"name": "adminpanel_session", "value": client.cookies["adminpanel_session"].value,
                          "url": live_server.url}])
    axe_source = AXE.read_text()
    problems: list[str] = []
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            for name, path in _pages(acme, ada, long_user, root):
                page.goto(live_server.url + path)
                scroll, inner, violations = _check(page, axe_source, axe=width == WIDTHS[0] or scheme == "light")
                page.screenshot(path=str(SHOTS / f"sweep-{width}-{scheme}-{name}.png"),
                                full_page=True)
                if scroll > inner:
                    problems.append(f"{width} {scheme} {name}: {scroll} px wide")
                for violation in violations:
                    problems.append(f"{width} {scheme} {name}: {violation}")
    assert not problems, json.dumps(problems, indent=1)

    # The phone menu opens without JavaScript's help (a details element) and holds Sign out.
    page.set_viewport_size({"width": 360, "height": 800})
    page.goto(live_server.url + f"/t/{acme.slug}/users/")
    assert not page.locator(".topbar-user").is_visible()
    page.click("#phone-menu summary")
    sign_out = page.locator("#phone-menu button", has_text="Sign out")
    assert sign_out.is_visible()
    box = sign_out.bounding_box()
    assert box and box["x"] + box["width"] <= 360
    assert page.locator("#phone-menu a", has_text="Invitations").is_visible()
    page.screenshot(path=str(SHOTS / "sweep-360-menu.png"))
    sign_out.click()
    page.wait_for_url("**/login/**")
