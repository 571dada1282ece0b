"""The per-user timeline: admin actions, sign-ins, sessions, factors, mails and link uses merged
newest first, readable (no dict text, parsed user agents), filtered by kind, in pages."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.app_users.services import app_user_ban, app_user_invite
from accounts.models import ActionToken
from audit import services as audit
from core.user_agents import describe
from tenants import db as tenant_db
from tests.accounts.app_user_data import make_session, make_user

pytestmark = pytest.mark.django_db
SAFARI = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.5 Safari/605.1.15")


def _titles(body: str) -> list[str]:
    return re.findall(r'<span class="event"[^>]*>([^<]+)</span>', body)


def test_the_timeline_merges_every_source(staff, acme, staff_factory):
    client = staff("admin")
    admin = staff_factory("boss@console.test", tenants={acme: "admin"})
    ann = app_user_invite(actor=admin, tenant=acme, email="ann@acme.test", name="Ann")
    alias = tenant_db.using(acme)
    ActionToken.objects.using(alias).filter(user_id=ann.pk).update(used_at=timezone.now())
    ended = make_session(acme, ann, user_agent=SAFARI, ip_address="198.51.100.7")
    ended.revoked_at = timezone.now()
    ended.save(using=alias)
    audit.record(event="app_user.sign_in", actor=None, tenant=acme, target=ann, data={"via": "portal", "aal": "aal1"})
    audit.record(event="app_user.factor_enrolled", actor=None, tenant=acme, target=ann, data={"factor": "iPhone"})
    app_user_ban(actor=admin, tenant=acme, user_id=ann.pk, until=timezone.now() + timedelta(days=7),
                 reason="spam")

    body = client.get(f"/t/acme/users/{ann.pk}/").content.decode()
    titles = _titles(body)
    for expected in ("Banned", "Factor enrolled", "Signed in", "Session started", "Session ended",
                     "Invitation link used", "Invited"):
        assert expected in titles, (expected, titles)
    assert any(t.startswith("Mail: ") for t in titles)
    assert "Safari 17 on macOS · 198.51.100.7" in body
    assert "by boss@console.test" in body
    assert "{&#x27;" not in body and "{'" not in body  # no Python dict text

    sessions_only = client.get(f"/t/acme/users/{ann.pk}/?kind=session").content.decode()
    assert set(_titles(sessions_only)) == {"Session started", "Session ended"}
    fragment = client.get(f"/t/acme/users/{ann.pk}/?kind=mail", HTTP_HX_REQUEST="true",
                          HTTP_HX_TARGET="user-timeline").content.decode()
    assert fragment.lstrip().startswith('<div id="user-timeline">')
    assert all(t.startswith("Mail: ") for t in _titles(fragment))


def test_the_timeline_is_paginated(staff, acme):
    client = staff("support")
    bob = make_user(acme, "bob@acme.test")
    now = timezone.now()
    for i in range(30):
        make_session(acme, bob, user_agent=SAFARI, created_at=now - timedelta(minutes=i))
    first = client.get(f"/t/acme/users/{bob.pk}/?kind=session").content.decode()
    assert len(_titles(first)) == 25
    older = re.search(r'id="timeline-older"', first) and re.search(r'href="([^"]+before=[^"#]+)', first)
    assert older
    second = client.get(older.group(1).replace("&amp;", "&")).content.decode()
    assert len(_titles(second)) == 5 and 'id="timeline-older"' not in second
    assert client.get(f"/t/acme/users/{bob.pk}/?before=2026-13-45T99:00").status_code == 200


def test_user_agents_read_like_a_person_would():
    assert describe(SAFARI) == "Safari 17 on macOS"
    assert describe("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0") == "Edge 131 on Windows"
    assert describe("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
                    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1") == "Safari 18 on iOS"
    assert describe("Mozilla/5.0 (Linux; Android 15; Pixel 9) Chrome/131.0.0.0 Mobile") == "Chrome 131 on Android"
    assert describe("") == "Unknown device" and describe("x" * 300) == "Unknown browser"
