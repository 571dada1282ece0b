"""``manage.py demo_data``: realistic users, every status, factors and sessions; twice gives the same users."""

from __future__ import annotations

import io
from collections import Counter

import pytest
from django.core.management import CommandError, call_command

from accounts.models import AppFactor, AppSession, AppUser
from audit.models import AuditEntry
from tenants import db as tenant_db
from tenants.models import Tenant

pytestmark = pytest.mark.django_db


def _snapshot(tenant):
    alias = tenant_db.using(tenant)
    users = sorted(AppUser.objects.using(alias).values_list("id", "email", "name", "banned_until", "deleted_at"))
    return users, AppSession.objects.using(alias).count(), AppFactor.objects.using(alias).count()


def test_demo_data_twice_gives_the_same_users(acme):
    out = io.StringIO()
    call_command("demo_data", "acme", "--users", "400", stdout=out)
    assert "400 demo users created" in out.getvalue()
    first = _snapshot(acme)
    users = AppUser.objects.using(tenant_db.using(acme))
    statuses = Counter(u.status for u in users.all())
    assert {"active", "invited", "banned", "deleted"} <= set(statuses), statuses
    assert statuses["active"] > 300
    assert users.filter(mfa_enabled=True).count() == first[2] > 50
    assert first[1] > 200 and users.exclude(last_sign_in_at=None).count() > 300
    assert all(" " in u.name for u in users.filter(deleted_at=None))  # first and last names

    again = io.StringIO()
    call_command("demo_data", "acme", "--users", "400", stdout=again)
    assert "0 demo users created" in again.getvalue() and "400 already there" in again.getvalue()
    assert _snapshot(acme) == first
    assert AuditEntry.objects.filter(event="demo_data.load").count() == 1

    call_command("demo_data", "acme", "--users", "450", stdout=io.StringIO())  # grows by the missing ones
    assert len(_snapshot(acme)[0]) == 450
    assert set(first[0]) <= set(_snapshot(acme)[0])


def test_demo_data_creates_a_missing_tenant_and_refuses_bad_counts(db):
    with pytest.raises(CommandError):
        call_command("demo_data", "demo", "--users", "0")
    call_command("demo_data", "demo-co", "--users", "5", stdout=io.StringIO())
    tenant = Tenant.objects.get(slug="demo-co")
    try:
        assert tenant.name == "Demo Co" and tenant.status == Tenant.Status.ACTIVE
        assert AppUser.objects.using(tenant_db.using(tenant)).count() == 5
    finally:
        tenant_db.drop_database(tenant)
