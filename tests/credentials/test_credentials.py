"""Service keys and personal tokens: shown once, stored hashed, scoped, expiring, revocable,
audited; the command line and the console pages that make them."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from audit.models import AuditEntry
from core.errors import Invalid, Refused
from credentials import services
from credentials.models import ApiKey, StaffToken
from tenants.access import actor_role

pytestmark = pytest.mark.django_db(transaction=True)


def test_key_is_shown_once_and_stored_hashed(acme, staff_factory):
    admin = staff_factory(tenants={acme: "admin"})
    key, raw = services.api_key_create(actor=admin, tenant=acme, name="billing", role="support")
    assert raw.startswith("acsk_") and len(raw) >= 45
    assert key.prefix == raw[:13] and key.secret_hash == services.hash_secret(raw)
    stored = ApiKey.objects.get(pk=key.pk)
    assert raw not in {stored.prefix, stored.secret_hash, stored.name}
    assert services.credential_for(raw) == key
    assert services.credential_for(raw + "x") is None
    entry = AuditEntry.objects.filter(event="api_key.create").get()
    assert entry.actor_id == admin.pk and entry.additional_data["prefix"] == key.prefix
    assert raw not in str(entry.additional_data)


def test_only_tenant_admins_create_keys(acme, staff_factory):
    support = staff_factory(tenants={acme: "support"})
    with pytest.raises(Refused):
        services.api_key_create(actor=support, tenant=acme, name="x", role="viewer")
    with pytest.raises(Invalid):
        services.api_key_create(actor=None, tenant=acme, name="x", role="owner")
    with pytest.raises(Invalid):
        services.api_key_create(actor=None, tenant=acme, name="  ", role="viewer")
    assert not ApiKey.objects.exists()


def test_key_actor_has_its_role_in_its_tenant_only(acme, globex):
    from credentials.services import ApiKeyActor

    key, _raw = services.api_key_create(actor=None, tenant=acme, name="x", role="viewer")
    actor = ApiKeyActor(key)
    assert actor_role(actor, acme) == "viewer"
    assert actor_role(actor, globex) is None
    # a key never manages keys, whatever its role
    admin_key, _ = services.api_key_create(actor=None, tenant=acme, name="y", role="admin")
    with pytest.raises(Refused):
        services.api_key_create(actor=ApiKeyActor(admin_key), tenant=acme, name="z", role="admin")


def test_expired_and_revoked_keys_stop_working(acme, staff_factory):
    admin = staff_factory(tenants={acme: "admin"})
    key, raw = services.api_key_create(actor=admin, tenant=acme, name="x", role="admin",
                                       expires_at=timezone.now() + timedelta(hours=1))
    assert services.credential_for(raw) is not None
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert services.credential_for(raw) is None
    key2, raw2 = services.api_key_create(actor=admin, tenant=acme, name="y", role="admin")
    services.api_key_revoke(actor=admin, tenant=acme, ref=key2.prefix)
    services.api_key_revoke(actor=admin, tenant=acme, ref=key2.prefix)  # twice: no change
    assert services.credential_for(raw2) is None
    assert AuditEntry.objects.filter(event="api_key.revoke").count() == 1
    with pytest.raises(Invalid):
        services.api_key_create(actor=admin, tenant=acme, name="z", role="admin",
                                expires_at=timezone.now() - timedelta(days=1))


def test_last_used_is_noted_at_most_once_a_minute(acme):
    key, raw = services.api_key_create(actor=None, tenant=acme, name="x", role="viewer")
    services.credential_for(raw, remote_addr="203.0.113.7")
    first = ApiKey.objects.get(pk=key.pk)
    assert first.last_used_at is not None and first.last_used_ip == "203.0.113.7"
    services.credential_for(raw, remote_addr="203.0.113.8")
    assert ApiKey.objects.get(pk=key.pk).last_used_ip == "203.0.113.7"


def test_personal_tokens_last_at_most_90_days_and_die_with_otp_reset(staff_factory):
    from accounts.services.staff import staff_otp_reset

    boss = staff_factory(superuser=True)
    ann = staff_factory()
    token, raw = services.staff_token_create(actor=ann, name="ci")
    assert raw.startswith("acpat_") and token.expires_at <= timezone.now() + timedelta(days=90)
    with pytest.raises(Invalid):
        services.staff_token_create(actor=ann, name="ci", expires_at=timezone.now() + timedelta(days=91))
    assert services.credential_for(raw) == token
    staff_otp_reset(actor=boss, user=ann)
    assert services.credential_for(raw) is None
    assert StaffToken.objects.get(pk=token.pk).revoked_at is not None


def test_personal_token_dies_with_deactivation(staff_factory):
    from accounts.services.staff import staff_deactivate

    boss = staff_factory(superuser=True)
    ann = staff_factory()
    _token, raw = services.staff_token_create(actor=ann, name="ci")
    staff_deactivate(actor=boss, user=ann)
    assert services.credential_for(raw) is None


def test_command_line_create_list_revoke(acme):
    out = StringIO()
    call_command("api_keys", "create", "acme", "--role", "support", "--name", "sync job", stdout=out)
    raw = out.getvalue().strip().splitlines()[-1]
    assert raw.startswith("acsk_") and " " not in raw
    key = services.credential_for(raw)
    assert isinstance(key, ApiKey) and key.role == "support" and key.tenant_id == acme.pk
    out = StringIO()
    call_command("api_keys", "list", "acme", stdout=out)
    assert key.prefix in out.getvalue() and raw not in out.getvalue()
    call_command("api_keys", "revoke", "acme", key.prefix, stdout=StringIO())
    assert services.credential_for(raw) is None
    entry = AuditEntry.objects.filter(event="api_key.create").get()
    assert entry.actor_id is None


def test_console_pages_create_and_revoke_behind_recent_otp(acme, staff_factory, as_staff):
    admin = staff_factory(tenants={acme: "admin"})
    client = as_staff(admin, otp_age_seconds=3600)  # the OTP check is an hour old
    assert client.get("/t/acme/api-keys/").status_code == 200
    stale = client.post("/t/acme/api-keys/create/", {"name": "x", "role": "viewer"})
    assert stale.status_code == 302 and "/account/reverify/" in stale["Location"]
    assert not ApiKey.objects.exists()
    client = as_staff(admin)
    page = client.post("/t/acme/api-keys/create/", {"name": "billing", "role": "admin"})
    assert page.status_code == 200
    key = ApiKey.objects.get()
    raw = page.content.decode().split("data-secret>")[1].split("<")[0]
    assert services.credential_for(raw) == key
    assert raw not in client.get("/t/acme/api-keys/").content.decode()  # shown once
    assert client.post(f"/t/acme/api-keys/{key.pk}/revoke/").status_code == 302
    assert ApiKey.objects.get().revoked_at is not None


def test_console_key_page_is_for_tenant_admins(acme, staff_factory, as_staff):
    support = staff_factory(tenants={acme: "support"})
    client = as_staff(support)
    assert client.get("/t/acme/api-keys/").status_code == 403
    assert client.post("/t/acme/api-keys/create/", {"name": "x", "role": "viewer"}).status_code == 403


def test_console_personal_tokens(staff_factory, as_staff):
    ann = staff_factory()
    client = as_staff(ann)
    page = client.post("/account/tokens/create/", {"name": "ci", "read_only": "on"})
    assert page.status_code == 200
    token = StaffToken.objects.get()
    assert token.read_only and token.user == ann
    other = staff_factory()
    other_token, _ = services.staff_token_create(actor=other, name="x")
    assert client.post(f"/account/tokens/{other_token.pk}/revoke/").status_code == 404  # foreign id
    assert StaffToken.objects.get(pk=other_token.pk).revoked_at is None  # not mine: untouched
    client.post(f"/account/tokens/{token.pk}/revoke/")
    assert StaffToken.objects.get(pk=token.pk).revoked_at is not None
