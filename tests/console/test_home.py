from __future__ import annotations

import pytest

from accounts.app_users import figures
from accounts.models import AppUser
from tenants import db as tenant_db

pytestmark = pytest.mark.django_db


def test_home_shows_users_per_tenant_for_the_tenants_i_can_reach(make_tenant, staff_factory, as_staff):
    acme = make_tenant("acme")
    make_tenant("globex")  # a second tenant the member is not assigned to
    AppUser.objects.using(tenant_db.using(acme)).bulk_create(
        [AppUser(email=f"u{i}@acme.test", mfa_enabled=i < 2) for i in range(4)]
    )
    figures.figures_refresh(acme)  # written behind the services' back: counted now
    member = staff_factory(tenants={acme: "viewer"})
    page = as_staff(member).get("/").content.decode()
    assert 'id="tenant-overview"' in page
    assert 'data-slug="acme"' in page and 'data-slug="globex"' not in page
    row = page.split('data-slug="acme"', 1)[1].split("</tr>", 1)[0]
    assert '<td class="num">4</td>' in row and "50.0%" in row  # four users, half with MFA


def test_instance_admin_home_lists_every_tenant(make_tenant, staff_factory, as_staff):
    make_tenant("acme"), make_tenant("globex")
    root = staff_factory(superuser=True)
    page = as_staff(root).get("/").content.decode()
    assert 'data-slug="acme"' in page and 'data-slug="globex"' in page
