"""The staff user and their devices come from a cached snapshot (accounts.identity), and every
change that ends or narrows access takes effect on the very next request: through the services,
through ``save()``, through ``QuerySet.update`` and ``bulk_update``, through deletes. Each test
warms the snapshot first (the member's page is served from it), then changes one thing."""

from __future__ import annotations

import pytest
from django.contrib.auth.hashers import make_password
from django.db import connections
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import identity
from accounts.models import User
from accounts.services import staff as staff_services
from tenants import services as tenant_services
from tenants.models import TenantAdmin
from tests.conftest import login_verified

pytestmark = pytest.mark.django_db


def _tables(queries) -> set[str]:
    return {q["sql"].split('"', 2)[1] for q in queries if q["sql"].startswith('SELECT "')}


@pytest.fixture
def member(make_tenant, staff_factory, client):
    """A support member of acme, signed in, whose snapshot is cached."""
    acme = make_tenant("acme")
    user = staff_factory(tenants={acme: "support"})
    login_verified(client, user)
    assert client.get("/t/acme/users/").status_code == 200
    with CaptureQueriesContext(connections["default"]) as control:
        assert client.get("/t/acme/users/").status_code == 200
    # Served from the snapshot: neither the user nor a device was read from its table.
    assert not _tables(control.captured_queries) & {"accounts_user", "otp_totp_totpdevice", "otp_static_staticdevice"}
    return user, acme


@pytest.fixture
def admin(staff_factory):
    return staff_factory(superuser=True)


def _signed_out(response) -> bool:
    return response.status_code == 302 and response["Location"].startswith("/login/")


@pytest.mark.parametrize("service", [staff_services.staff_deactivate, staff_services.staff_otp_reset])
def test_deactivation_or_a_reset_second_factor_ends_the_next_request(member, admin, client, service):
    user, _ = member
    service(actor=admin, user=user)
    assert _signed_out(client.get("/t/acme/users/"))


@pytest.mark.parametrize("how", ["update", "bulk_update", "save"])
def test_deactivation_through_the_orm_ends_the_next_request(member, client, how):
    user, _ = member
    if how == "update":
        User.objects.filter(pk=user.pk).update(is_active=False)
    elif how == "bulk_update":
        fresh = User.objects.get(pk=user.pk)
        fresh.is_active = False
        User.objects.bulk_update([fresh], ["is_active"])
    else:
        fresh = User.objects.get(pk=user.pk)
        fresh.is_active = False
        fresh.save()
    assert _signed_out(client.get("/t/acme/users/"))


@pytest.mark.parametrize("how", ["save", "update"])
def test_a_password_change_ends_the_other_sessions_at_their_next_request(member, client, how):
    user, _ = member
    if how == "save":
        user.set_password("another-long-password-9")
        user.save()
    else:
        User.objects.filter(pk=user.pk).update(password=make_password("another-long-password-9"))
    assert _signed_out(client.get("/t/acme/users/"))


def test_deleting_the_user_ends_the_next_request(member, admin, client):
    user, _ = member
    User.objects.filter(pk=user.pk).delete()
    assert _signed_out(client.get("/t/acme/users/"))


@pytest.mark.parametrize("how", ["queryset_delete", "instance_delete", "unconfirmed"])
def test_a_removed_device_ends_the_next_request(member, client, how):
    user, _ = member
    device = TOTPDevice.objects.get(user=user)
    if how == "queryset_delete":
        TOTPDevice.objects.filter(user=user).delete()
    elif how == "instance_delete":
        device.delete()
    else:
        device.confirmed = False
        device.save()
    assert _signed_out(client.get("/t/acme/users/"))


def test_a_new_backup_device_is_seen_at_once(member, client):
    """The snapshot holds every device of the user: one added later is a new generation."""
    user, _ = member
    backup = StaticDevice.objects.create(user=user, name="Backup codes", confirmed=True)
    session = client.session
    session["otp_device_id"] = backup.persistent_id
    session.save()
    assert client.get("/t/acme/users/").status_code == 200


def test_a_changed_or_removed_role_takes_effect_on_the_next_request(member, admin, client):
    user, acme = member
    assert client.get("/t/acme/users/invite/").status_code == 200  # support may invite
    staff_services.tenant_admin_change_role(actor=admin, tenant=acme, user=user, role="viewer")
    assert client.get("/t/acme/users/invite/").status_code == 403
    TenantAdmin.objects.filter(user=user, tenant=acme).update(role="support")
    assert client.get("/t/acme/users/invite/").status_code == 200
    staff_services.tenant_admin_remove(actor=admin, tenant=acme, user=user)
    assert client.get("/t/acme/users/").status_code == 404


def test_a_suspended_tenant_says_so_on_the_next_request(member, admin, client):
    _, acme = member
    assert 'id="tenant-suspended"' not in client.get("/t/acme/users/").content.decode()
    tenant_services.tenant_suspend(actor=admin, tenant=acme)
    assert 'id="tenant-suspended"' in client.get("/t/acme/users/").content.decode()


def test_a_revoked_instance_admin_loses_the_instance_pages_on_the_next_request(admin, staff_factory):
    other = staff_factory(superuser=True)  # the last instance admin cannot be demoted
    client = login_verified(Client(), admin)
    assert client.get("/tenants/").status_code == 200
    assert client.get("/tenants/").status_code == 200  # from the snapshot
    staff_services.staff_set_instance_admin(actor=other, user=admin, value=False)
    assert client.get("/tenants/").status_code == 404


def test_a_snapshot_from_another_generation_is_never_believed(member, client):
    """A reader that took the generation before a change wrote its snapshot after it: the
    snapshot carries the old generation and is ignored."""
    user, _ = member
    from django.core.cache import cache

    stale = User.objects.get(pk=user.pk)
    User.objects.filter(pk=user.pk).update(is_active=False)
    cache.set(f"staff-id:{user.pk}", ("an-old-generation", stale, {}), identity.SNAPSHOT_SECONDS)
    assert _signed_out(client.get("/t/acme/users/"))


def test_a_lost_generation_is_a_new_one(member, client):
    """An evicted or expired generation key never matches a snapshot taken under it."""
    user, _ = member
    from django.core.cache import cache

    with CaptureQueriesContext(connections["default"]) as control:
        cache.delete(f"staff-gen:{user.pk}")
        assert client.get("/t/acme/users/").status_code == 200
    assert "accounts_user" in _tables(control.captured_queries)  # read again, not believed


def test_no_device_row_is_changed_by_a_queryset_update():
    """django-otp's device models keep their own queryset: an ``update()`` on one would send no
    signal and leave a snapshot alive. The source has none (devices change by ``save``/``delete``)."""
    import re
    from pathlib import Path

    from django.conf import settings

    pattern = re.compile(r"Device\.objects[^\n]*\.update\(")
    packages = ["accounts", "api", "audit", "batchjobs", "config", "console", "core", "credentials",
                "events", "jobs", "outbox", "portal", "tenants", "webhooks"]
    offenders = [str(path) for package in packages for path in (Path(settings.BASE_DIR) / package).rglob("*.py")
                 if pattern.search(path.read_text())]
    assert offenders == []


@pytest.mark.django_db(transaction=True)  # autocommit, as in production: a save commits at once
@pytest.mark.parametrize("how", ["update", "save", "device_delete"])
def test_a_cache_that_refuses_the_bump_refuses_the_change(member, client, how, monkeypatch):
    """A change whose new generation cannot be written (the cache is briefly unreachable) must
    not be made: made without it, the old snapshot is believed again once the cache answers."""
    user, _ = member
    from django.core.cache import cache

    def unreachable(*args, **kwargs):
        raise ConnectionError("cache unreachable")

    with monkeypatch.context() as m:
        m.setattr(cache, "set_many", unreachable)
        with pytest.raises(ConnectionError):
            if how == "update":
                User.objects.filter(pk=user.pk).update(is_active=False)
            elif how == "save":
                fresh = User.objects.get(pk=user.pk)
                fresh.is_active = False
                fresh.save()
            else:
                TOTPDevice.objects.filter(user=user).delete()
    # The cache answers again: either the change was not made, or it is seen at once.
    changed = not User.objects.get(pk=user.pk).is_active or not TOTPDevice.objects.filter(user=user).exists()
    assert not (changed and client.get("/t/acme/users/").status_code == 200)


def test_the_cached_snapshot_holds_no_password_hash_and_a_password_change_still_works(member, client):
    """The snapshot keeps the user row without its hash (a cache dump gives nothing to crack);
    the session check uses the snapshot's session hash, and a current-password check or a
    password change reads the hash from the database when it needs it."""
    import pickle

    from django.core.cache import cache

    from tests.conftest import STAFF_PASSWORD

    user, _ = member
    user.refresh_from_db()
    stored = cache.get(f"staff-id:{user.pk}")
    assert stored is not None
    dumped = pickle.dumps(stored)
    assert user.password.encode() not in dumped and user.password.split("$")[-1].encode() not in dumped
    # Still served from the snapshot, the session check passing on its session hash.
    with CaptureQueriesContext(connections["default"]) as control:
        assert client.get("/t/acme/users/").status_code == 200
    assert "accounts_user" not in _tables(control.captured_queries)
    # A wrong current password is refused, the right one changes it, and this session survives.
    assert client.post("/account/security/password/", {"current_password": "wrong-password-1",
                       "password": "another-long-password-9", "password_confirm": "another-long-password-9"},
                       ).status_code == 200
    user.refresh_from_db()
    assert user.check_password(STAFF_PASSWORD)
    response = client.post("/account/security/password/", {
        "current_password": STAFF_PASSWORD, "password": "another-long-password-9",
        "password_confirm": "another-long-password-9"})
    assert response.status_code == 302, response.content[:400]
    user.refresh_from_db()
    assert user.check_password("another-long-password-9")
    assert client.get("/t/acme/users/").status_code == 200
