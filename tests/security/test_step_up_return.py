from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from accounts.models import AppUser
from tenants import db as tenant_db

pytestmark = pytest.mark.django_db


def test_a_stale_otp_post_returns_to_the_page_the_form_was_on(make_tenant, staff_factory, as_staff):
    acme = make_tenant("acme")
    user = AppUser.objects.using(tenant_db.using(acme)).create(email="ann@acme.test")
    admin = as_staff(staff_factory(tenants={acme: "admin"}), otp_age_seconds=3600)
    page = f"/t/acme/users/{user.pk}/?tab=1"
    response = admin.post(f"/t/acme/users/{user.pk}/ban/", {"duration": "24h"},
                          HTTP_REFERER=f"http://testserver{page}")
    assert response.status_code == 302
    target = urlsplit(response["Location"])
    assert target.path == "/account/reverify/"
    assert parse_qs(target.query)["next"] == [page]
    user.refresh_from_db()
    assert user.banned_until is None
    # A foreign referer never becomes the return page.
    response = admin.post(f"/t/acme/users/{user.pk}/ban/", {"duration": "24h"},
                          HTTP_REFERER="https://evil.example/phish")
    assert parse_qs(urlsplit(response["Location"]).query)["next"] == ["/"]
