"""A session or factor id that is not the user's (another user's, or unknown) answers 404 and
changes nothing (SECURITY.md: foreign ids answer 404)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.app_users import services
from accounts.models import AppFactor, AppSession
from tenants import db as tenant_db


def _session(tenant, user) -> AppSession:
    now = timezone.now()
    return AppSession.objects.using(tenant_db.using(tenant)).create(
        user_id=user.pk, token_hash=uuid.uuid4().hex, created_at=now, last_seen_at=now,
        expires_at=now + timedelta(days=1),
    )


@pytest.fixture
def setup(make_tenant, staff_factory, as_staff):
    tenant = make_tenant("acme")
    admin = staff_factory(superuser=True)
    ann = services.app_user_create(actor=admin, tenant=tenant, email="ann@example.test",
                                   name="Ann", password="a-long-password-1")
    bob = services.app_user_create(actor=admin, tenant=tenant, email="bob@example.test",
                                   name="Bob", password="a-long-password-1")
    as_staff(admin)
    return tenant, ann, bob


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("foreign", ["bobs", "unknown", "malformed"])
def test_ending_a_foreign_session_is_404(client, setup, foreign):
    tenant, ann, bob = setup
    _session(tenant, ann)
    bobs = _session(tenant, bob)
    value = {"bobs": str(bobs.pk), "unknown": str(uuid.uuid4()), "malformed": "x" * 100}[foreign]
    response = client.post(f"/t/acme/users/{ann.pk}/sign-out/", {"session_id": value})
    assert response.status_code == 404
    live = AppSession.objects.using(tenant_db.using(tenant)).filter(revoked_at__isnull=True)
    assert live.count() == 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("foreign", ["bobs", "unknown", "malformed"])
def test_removing_a_foreign_factor_is_404(client, setup, foreign):
    tenant, ann, bob = setup
    alias = tenant_db.using(tenant)
    AppFactor.objects.using(alias).create(user_id=ann.pk, kind="totp", friendly_name="A",
                                          key="00" * 20, confirmed_at=timezone.now())
    bobs = AppFactor.objects.using(alias).create(user_id=bob.pk, kind="totp", friendly_name="B",
                                                 key="00" * 20, confirmed_at=timezone.now())
    value = {"bobs": str(bobs.pk), "unknown": str(uuid.uuid4()), "malformed": "nope"}[foreign]
    response = client.post(f"/t/acme/users/{ann.pk}/factors/remove/", {"factor_id": value})
    assert response.status_code == 404
    assert AppFactor.objects.using(alias).count() == 2


@pytest.mark.django_db(transaction=True)
def test_own_session_and_factor_still_work(client, setup):
    tenant, ann, _ = setup
    mine = _session(tenant, ann)
    response = client.post(f"/t/acme/users/{ann.pk}/sign-out/", {"session_id": str(mine.pk)})
    assert response.status_code == 302
    mine.refresh_from_db(using=tenant_db.using(tenant))
    assert mine.revoked_at is not None
