"""The console's webhook pages: tenant admins only (support and viewer 403, another tenant 404),
every action audited, the log with status, duration and first bytes."""

from __future__ import annotations

import pytest

from audit.models import AuditEntry
from webhooks import delivery
from webhooks import services as hooks
from webhooks.models import Attempt, Delivery, Endpoint

pytestmark = pytest.mark.django_db


@pytest.fixture
def endpoint(acme, tadmin, private_ok, receiver):
    made, _ = hooks.endpoint_create(actor=tadmin, tenant=acme, url=receiver.url)
    return made


def _pages(endpoint, delivery_id=1):
    base = f"/t/acme/webhooks/{endpoint.pk}/"
    gets = ["/t/acme/webhooks/", base, f"{base}deliveries/{delivery_id}/"]
    posts = ["/t/acme/webhooks/new/", f"{base}edit/", f"{base}secret/", f"{base}test/", f"{base}replay/",
             f"{base}deliveries/{delivery_id}/replay/", f"{base}delete/"]
    return gets, posts


@pytest.mark.parametrize("role", ["support", "viewer"])
def test_support_and_viewers_are_refused_every_page(as_staff, staff_factory, acme, endpoint, role):
    client = as_staff(staff_factory(tenants={acme: role}))
    gets, posts = _pages(endpoint)
    for url in gets:
        assert client.get(url).status_code == 403, url
    for url in posts:
        assert client.post(url, {"url": "https://x.example.com/"}).status_code == 403, url
    assert Endpoint.objects.count() == 1 and Endpoint.objects.get().url == endpoint.url


def test_another_tenants_admin_gets_404_and_an_admin_of_both_cannot_reach_across(
        as_staff, staff_factory, acme, globex, endpoint):
    client = as_staff(staff_factory(tenants={globex: "admin"}))
    gets, posts = _pages(endpoint)
    for url in gets:
        assert client.get(url).status_code == 404, url
    for url in posts:
        assert client.post(url).status_code == 404, url
    both = as_staff(staff_factory(tenants={globex: "admin", acme: "viewer"}))
    # The endpoint of acme through globex's URLs: not found there.
    assert both.get(f"/t/globex/webhooks/{endpoint.pk}/").status_code == 404
    assert both.post(f"/t/globex/webhooks/{endpoint.pk}/delete/").status_code == 404
    assert Endpoint.objects.filter(pk=endpoint.pk).exists()


def test_an_admin_creates_edits_tests_rotates_replays_and_removes_every_step_audited(
        as_staff, tadmin, acme, receiver, private_ok):
    client = as_staff(tadmin)
    page = client.get("/t/acme/webhooks/")
    assert page.status_code == 200 and b"No endpoint yet" in page.content
    bad = client.post("/t/acme/webhooks/new/", {"url": "ftp://x"})
    assert bad.status_code == 400 and b"must start with https://" in bad.content
    created = client.post("/t/acme/webhooks/new/", {"url": receiver.url, "description": "CRM sync",
                                                     "event_types": ["user.banned", "user.deleted"], "enabled": "on"})
    endpoint = Endpoint.objects.get()
    assert created.status_code == 302 and created["Location"] == f"/t/acme/webhooks/{endpoint.pk}/"
    assert endpoint.event_types == ["user.banned", "user.deleted"] and endpoint.description == "CRM sync"
    base = f"/t/acme/webhooks/{endpoint.pk}/"
    page = client.get(base)
    assert page.status_code == 200 and endpoint.secret.encode() not in page.content  # shown on request only
    revealed = client.post(f"{base}secret/")
    assert revealed.status_code == 200 and endpoint.secret.encode() in revealed.content
    rotated = client.post(f"{base}secret/", {"rotate": "1"})
    endpoint.refresh_from_db()
    assert endpoint.secret.encode() in rotated.content and endpoint.previous_secret
    assert client.post(f"{base}edit/", {"url": receiver.url, "description": "CRM", "enabled": "on"}).status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.event_types == [] and endpoint.description == "CRM"
    assert client.post(f"{base}test/").status_code == 302
    receiver.status = 500
    delivery.run_until_idle(endpoint.pk)
    row = Delivery.objects.get()
    assert row.state == "failed"
    log = client.get(base).content.decode()
    assert "webhook.test" in log and "HTTP 500" in log
    detail = client.get(f"{base}deliveries/{row.pk}/").content.decode()
    assert "status 500 from the test receiver" in detail and " ms" in detail
    receiver.status = 200
    assert client.post(f"{base}replay/", {"since": "2000-01-01T00:00"}).status_code == 302
    delivery.run_until_idle(endpoint.pk)
    row.refresh_from_db()
    assert row.state == "succeeded" and Attempt.objects.filter(delivery=row, succeeded=True).count() == 1
    assert client.post(f"{base}deliveries/{row.pk}/replay/").status_code == 302
    assert client.get(f"{base}deliveries/999999/").status_code == 404
    assert client.post(f"{base}deliveries/999999/replay/").status_code == 404
    assert client.post(f"{base}delete/").status_code == 302
    assert not Endpoint.objects.exists()
    events = list(AuditEntry.objects.filter(event__startswith="webhook.").order_by("id")
                  .values_list("event", flat=True))
    assert events == ["webhook.endpoint_create", "webhook.secret_reveal", "webhook.secret_rotate",
                      "webhook.endpoint_update", "webhook.test_send", "webhook.replay", "webhook.replay",
                      "webhook.endpoint_delete"]
    assert all(e.actor_id == tadmin.pk for e in AuditEntry.objects.filter(event__startswith="webhook."))
    text = str(list(AuditEntry.objects.values_list("changes", "additional_data")))
    assert "whsec_" not in text


def test_private_target_refused_in_the_form(as_staff, tadmin, acme, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = False
    response = as_staff(tadmin).post("/t/acme/webhooks/new/", {"url": "http://127.0.0.1:9000/x"})
    assert response.status_code == 400 and b"Private, loopback" in response.content
    assert not Endpoint.objects.exists()


def test_the_list_and_the_log_take_a_fixed_number_of_queries(as_staff, tadmin, acme, receiver, private_ok):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = as_staff(tadmin)
    endpoint, _ = hooks.endpoint_create(actor=tadmin, tenant=acme, url=receiver.url)

    def count(url):
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        return len(queries)

    hooks.endpoint_send_test(actor=tadmin, tenant=acme, endpoint_id=endpoint.pk)
    count("/t/acme/webhooks/")  # warm-up (session, content types)
    few_list, few_log = count("/t/acme/webhooks/"), count(f"/t/acme/webhooks/{endpoint.pk}/")
    for i in range(5):
        hooks.endpoint_create(actor=tadmin, tenant=acme, url=f"{receiver.url}/{i}")
        hooks.endpoint_send_test(actor=tadmin, tenant=acme, endpoint_id=endpoint.pk)
    delivery.run_until_idle(endpoint.pk)
    assert count("/t/acme/webhooks/") == few_list
    assert count(f"/t/acme/webhooks/{endpoint.pk}/") == few_log


def test_instance_endpoints_for_instance_admins_only_with_tenant_events(as_staff, staff_factory, acme, make_tenant,
                                                                        receiver, private_ok):
    from django.test import Client

    from tests.conftest import login_verified

    tenant_admin = login_verified(Client(), staff_factory(tenants={acme: "admin"}))
    assert tenant_admin.get("/webhooks/").status_code == 404  # not an instance admin: no such page
    assert tenant_admin.post("/webhooks/new/", {"url": receiver.url}).status_code == 404
    root = staff_factory(superuser=True)
    client = as_staff(root)
    page = client.get("/webhooks/")
    assert page.status_code == 200 and b"tenant.suspended" in page.content and b"user.banned" not in page.content
    bad = client.post("/webhooks/new/", {"url": receiver.url, "event_types": ["user.banned"]})
    assert bad.status_code == 400
    made = client.post("/webhooks/new/", {"url": receiver.url, "event_types": ["tenant.created"], "enabled": "on"})
    endpoint = Endpoint.objects.get(tenant__isnull=True)
    assert made.status_code == 302 and made["Location"] == f"/webhooks/{endpoint.pk}/"
    assert tenant_admin.get(f"/webhooks/{endpoint.pk}/").status_code == 404
    assert client.get(f"/t/acme/webhooks/{endpoint.pk}/").status_code == 404  # not acme's
    make_tenant("initech")
    delivery.run_until_idle(endpoint.pk)
    assert [r.json["type"] for r in receiver.received] == ["tenant.created"]
    row = Delivery.objects.get(endpoint=endpoint)
    detail = client.get(f"/webhooks/{endpoint.pk}/deliveries/{row.pk}/")
    assert detail.status_code == 200 and b"initech" in detail.content
    assert client.post(f"/webhooks/{endpoint.pk}/secret/").status_code == 200
    assert client.post(f"/webhooks/{endpoint.pk}/delete/").status_code == 302
    assert not Endpoint.objects.exists()


def test_creating_editing_removing_and_the_secret_need_a_recent_code(as_staff, tadmin, acme, endpoint):
    client = as_staff(tadmin, otp_age_seconds=3600)
    base = f"/t/acme/webhooks/{endpoint.pk}/"
    for url in ("/t/acme/webhooks/new/", f"{base}edit/", f"{base}secret/", f"{base}delete/"):
        response = client.post(url, {"url": "https://elsewhere.example.com/"})
        assert response.status_code == 302 and response["Location"].startswith("/account/reverify/"), url
    assert client.get(base).status_code == 200  # reading the log does not
    endpoint.refresh_from_db()
    assert Endpoint.objects.count() == 1 and endpoint.url.startswith("http://127.0.0.1")
    assert not AuditEntry.objects.filter(event="webhook.secret_reveal").exists()
