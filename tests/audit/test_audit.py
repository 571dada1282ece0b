from __future__ import annotations

import pytest
from auditlog.registry import auditlog
from django.core.checks import run_checks
from django.test import RequestFactory

from accounts.models import AppUser
from audit import services as audit
from audit.models import AuditEntry
from core import request_context
from tenants import db as tenant_db

pytestmark = pytest.mark.django_db


def test_record_writes_tenant_actor_target_diff_address_and_correlation_id(make_tenant, django_user_model):
    acme = make_tenant("acme")
    staff = django_user_model.objects.create_superuser("root@example.test", "x" * 12)
    user = AppUser.objects.using(tenant_db.using(acme)).create(email="ann@acme.test", name="Ann")
    before = audit.snapshot(user)
    user.name = "Ann B."
    user.password = "argon2$secret-hash"
    user.save()
    request = RequestFactory().get("/", REMOTE_ADDR="203.0.113.9", HTTP_X_REQUEST_ID="req-123")
    request_context.bind(request)
    try:
        entry = audit.record(
            event="app_user.update", actor=staff, tenant=acme, target=user,
            before=before, after=audit.snapshot(user), data={"token": "nope", "reason": "typo"},
        )
    finally:
        request_context.reset()
    entry = AuditEntry.objects.get(pk=entry.pk)  # read back from the control database
    assert entry.tenant == acme
    assert entry.actor == staff and entry.actor_email == "root@example.test"
    assert entry.object_pk == str(user.pk) and entry.object_repr == "ann@acme.test"
    assert entry.content_type.model == "appuser"
    assert entry.changes == {"name": ["Ann", "Ann B."]}  # the password never reaches the trail
    assert entry.remote_addr == "203.0.113.9"
    assert entry.cid == "req-123"
    assert entry.additional_data == {"reason": "typo", "tenant": "acme"}


def test_record_many_writes_in_bulk(make_tenant, django_assert_max_num_queries):
    acme = make_tenant("acme")
    entries = [
        audit.Entry(event="app_user.ban", target_model=AppUser, target_pk=i, target_repr=f"u{i}")
        for i in range(500)
    ]
    audit.record_many(entries[:1], actor=None, tenant=acme)  # warm the content-type cache
    # One INSERT per chunk (SQLite caps parameters per statement), never one per row.
    with django_assert_max_num_queries(20):
        assert audit.record_many(entries[1:], actor=None, tenant=acme) == 499
    assert AuditEntry.objects.filter(tenant=acme, event="app_user.ban").count() == 500


def test_control_plane_models_are_logged_without_the_password(django_user_model):
    staff = django_user_model.objects.create_user("s@example.test", "first-password-1")
    staff.name = "Sam"
    staff.set_password("second-password-2")
    staff.save()
    entries = AuditEntry.objects.filter(object_pk=str(staff.pk)).order_by("timestamp", "id")
    assert [e.event for e in entries] == ["accounts.user.create", "accounts.user.update"]
    for entry in entries:
        assert "password" not in (entry.changes or {})
        assert "second-password" not in str(entry.changes)
    assert entries[1].changes["name"] == ["", "Sam"]


def test_the_client_address_is_the_peer_not_the_left_most_forwarded_for(settings):
    factory = RequestFactory()
    spoofed = factory.get("/", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="1.2.3.4, 10.0.0.9")
    assert request_context.client_ip(spoofed) == "10.0.0.5"
    settings.TRUSTED_PROXY_HEADER = "X-Real-IP"
    proxied = factory.get("/", REMOTE_ADDR="10.0.0.5", HTTP_X_REAL_IP="198.51.100.7")
    assert request_context.client_ip(proxied) == "198.51.100.7"
    garbage = factory.get("/", REMOTE_ADDR="10.0.0.5", HTTP_X_REAL_IP="<script>")
    assert request_context.client_ip(garbage) is None  # a broken proxy header is no address


def test_automatic_logging_of_tenant_database_rows_is_vetoed(make_tenant):
    acme = make_tenant("acme")
    # Even if somebody registers a tenant model with auditlog, nothing is logged automatically
    # (auditlog would diff against the control database, which has no such row)...
    auditlog.register(AppUser)
    try:
        user = AppUser.objects.using(tenant_db.using(acme)).create(email="x@acme.test")
        AppUser.objects.using(tenant_db.using(acme)).filter(pk=user.pk).delete()
        user = AppUser.objects.using(tenant_db.using(acme)).create(email="y@acme.test")
        user.delete()
        # ...and the system check refuses such a registration outright.
        errors = run_checks()
        assert any(e.id == "tenants.E001" and "accounts.AppUser" in e.msg for e in errors)
    finally:
        auditlog.unregister(AppUser)
    assert not AuditEntry.objects.filter(content_type__model="appuser").exists()
    assert not any(e.id == "tenants.E001" for e in run_checks())
