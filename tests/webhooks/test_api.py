"""The native API's part: the event feed (cursor) and webhook endpoints (personal tokens of
tenant admins); API actions produce their events, naming the key."""

from __future__ import annotations

import json

import pytest
from django.core.cache import cache

from credentials.services import api_key_create, staff_token_create
from events.models import Event
from webhooks import delivery
from webhooks.models import Endpoint

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()  # rate-limit counters
    yield
    cache.clear()


def call(client, secret, method, path, body=None):
    data = json.dumps(body) if body is not None else ""
    return client.generic(method, f"/api/v1{path}", data, content_type="application/json",
                          headers={"Authorization": f"Bearer {secret}"})


def key(tenant, role="admin"):
    return api_key_create(actor=None, tenant=tenant, name=f"{role} key", role=role)[1]


def token(user, **kwargs):
    return staff_token_create(actor=user, name="t", **kwargs)[1]


def test_api_actions_produce_their_events_naming_the_key(client, acme):
    secret = key(acme)
    made = call(client, secret, "POST", "/tenants/acme/users", {"email": "api@example.com", "name": "Api"})
    assert made.status_code == 201, made.content
    uid = made.json()["data"]["id"]
    assert call(client, secret, "POST", f"/tenants/acme/users/{uid}/ban", {"duration": "1h"}).status_code == 200
    assert call(client, secret, "POST", f"/tenants/acme/users/{uid}/unban").status_code == 200
    assert call(client, secret, "DELETE", f"/tenants/acme/users/{uid}").status_code == 200
    kinds = [e.type for e in Event.objects.filter(tenant=acme).order_by("id") if not e.type.startswith("tenant.")]
    assert kinds == ["user.created", "user.banned", "user.unbanned", "user.deleted"]
    banned = Event.objects.get(type="user.banned").payload["data"]
    assert banned["actor"] == {"type": "api_key", "prefix": secret[:len(banned["actor"]["prefix"])]}
    assert banned["user"] == {"id": uid, "email": "api@example.com"}
    assert secret not in json.dumps(list(Event.objects.values_list("payload", flat=True)))


def test_the_feed_pages_with_the_cursor_and_is_tenant_scoped(client, acme, globex, tadmin):
    from tests.accounts.app_user_data import make_user
    from tests.webhooks.test_delivery import _ban

    ann = make_user(acme, "ann@example.test")
    for _ in range(3):
        _ban(tadmin, acme, ann)
    secret = key(acme)
    first = call(client, secret, "GET", "/tenants/acme/events?limit=2")
    assert first.status_code == 200, first.content
    body = first.json()
    assert [e["type"] for e in body["data"]] == ["user.banned", "user.banned"]
    assert body["data"][0]["id"].startswith("evt_") and body["data"][0]["data"]["user"]["email"] == "ann@example.test"
    cursor = body["meta"]["next_cursor"]
    rest = call(client, secret, "GET", f"/tenants/acme/events?after={cursor}").json()
    assert len(rest["data"]) == 1 and rest["data"][0]["sequence"] > body["data"][1]["sequence"]
    empty = call(client, secret, "GET", f"/tenants/acme/events?after={rest['meta']['next_cursor']}").json()
    assert empty["data"] == [] and empty["meta"]["next_cursor"] == rest["meta"]["next_cursor"]  # poll again later
    assert call(client, secret, "GET", "/tenants/acme/events?after=evt_nope").status_code == 422
    assert call(client, secret, "GET", "/tenants/acme/events?limit=0").status_code == 422
    assert call(client, secret, "GET", "/tenants/globex/events").status_code == 404  # another tenant
    assert call(client, key(acme, "viewer"), "GET", "/tenants/acme/events").status_code == 403
    assert call(client, key(acme, "support"), "GET", "/tenants/acme/events").status_code == 403


def test_endpoint_crud_rotation_test_log_and_replay(client, acme, tadmin, receiver, private_ok):
    t = token(tadmin)
    made = call(client, t, "POST", "/tenants/acme/webhooks",
                {"url": receiver.url, "event_types": ["user.banned"], "description": "CRM"})
    assert made.status_code == 201, made.content
    data = made.json()["data"]
    secret, eid = data["secret"], data["id"]
    assert secret.startswith("whsec_") and made["Location"] == f"/api/v1/tenants/acme/webhooks/{eid}"
    listed = call(client, t, "GET", "/tenants/acme/webhooks").json()["data"]
    assert [e["id"] for e in listed] == [eid] and "secret" not in listed[0]
    assert call(client, t, "GET", f"/tenants/acme/webhooks/{eid}").json()["data"]["event_types"] == ["user.banned"]
    patched = call(client, t, "PATCH", f"/tenants/acme/webhooks/{eid}", {"description": "CRM sync"})
    assert patched.json()["data"]["description"] == "CRM sync" and patched.json()["data"]["event_types"] == ["user.banned"]
    rotated = call(client, t, "POST", f"/tenants/acme/webhooks/{eid}/rotate-secret").json()["data"]
    assert rotated["secret"] != secret and rotated["previous_secret_valid_until"]
    test = call(client, t, "POST", f"/tenants/acme/webhooks/{eid}/test")
    assert test.status_code == 202
    receiver.status = 500
    delivery.run_until_idle(Endpoint.objects.get().pk)
    log = call(client, t, "GET", f"/tenants/acme/webhooks/{eid}/deliveries").json()["data"]
    assert log[0]["state"] == "failed" and log[0]["event_type"] == "webhook.test"
    one = call(client, t, "GET", f"/tenants/acme/webhooks/{eid}/deliveries/{log[0]['id']}").json()["data"]
    assert one["attempt_log"][0]["response_head"] == "status 500 from the test receiver"
    receiver.status = 200
    replayed = call(client, t, "POST", f"/tenants/acme/webhooks/{eid}/replay", {"since": "2000-01-01T00:00:00Z"})
    assert replayed.status_code == 202 and replayed.json()["data"]["queued"] == 1
    delivery.run_until_idle(Endpoint.objects.get().pk)
    receiver.received[-1].verify(secret)  # the old secret still signs during the overlap
    receiver.received[-1].verify(rotated["secret"])
    assert call(client, t, "POST", f"/tenants/acme/webhooks/{eid}/deliveries/{log[0]['id']}/replay").status_code == 202
    assert call(client, t, "DELETE", f"/tenants/acme/webhooks/{eid}").status_code == 200
    assert call(client, t, "GET", f"/tenants/acme/webhooks/{eid}").status_code == 404


def test_webhook_endpoints_role_matrix_keys_refused_other_tenants_404(client, acme, globex, staff_factory, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = False
    admin = staff_factory(tenants={acme: "admin"})
    made = call(client, token(admin), "POST", "/tenants/acme/webhooks", {"url": "https://hooks.example.com/in"})
    eid = made.json()["data"]["id"]
    paths = [("GET", "/tenants/acme/webhooks", None), ("POST", "/tenants/acme/webhooks", {"url": "https://x.example.com/"}),
             ("GET", f"/tenants/acme/webhooks/{eid}", None), ("PATCH", f"/tenants/acme/webhooks/{eid}", {"enabled": False}),
             ("POST", f"/tenants/acme/webhooks/{eid}/rotate-secret", None),
             ("POST", f"/tenants/acme/webhooks/{eid}/test", None),
             ("GET", f"/tenants/acme/webhooks/{eid}/deliveries", None),
             ("DELETE", f"/tenants/acme/webhooks/{eid}", None)]
    for role, status in (("support", 403), ("viewer", 403)):
        t = token(staff_factory(tenants={acme: role}))
        for method, path, body in paths:
            assert call(client, t, method, path, body).status_code == status, (role, method, path)
    outsider = token(staff_factory(tenants={globex: "admin"}))
    for method, path, body in paths:
        assert call(client, outsider, method, path, body).status_code == 404, (method, path)
    admin_key = key(acme)  # a service key never manages webhooks, whatever its role
    for method, path, body in paths:
        assert call(client, admin_key, method, path, body).status_code == 401, (method, path)
    refused = call(client, token(admin), "POST", "/tenants/acme/webhooks", {"url": "http://127.0.0.1:8080/"})
    assert refused.status_code == 422 and refused.json()["error"]["details"]["fields"]["url"]
    unknown = call(client, token(admin), "POST", "/tenants/acme/webhooks", {"url": "https://x.example.com/", "nope": 1})
    assert unknown.status_code == 422
    endpoint = Endpoint.objects.get()
    assert endpoint.enabled and endpoint.url == "https://hooks.example.com/in"


def test_instance_endpoints_through_the_api_for_instance_admins(client, acme, staff_factory, make_tenant,
                                                                 receiver, private_ok):
    root = token(staff_factory(superuser=True))
    tenant_admin = token(staff_factory(tenants={acme: "admin"}))
    assert call(client, tenant_admin, "GET", "/webhooks").status_code == 403
    assert call(client, key(acme), "GET", "/webhooks").status_code == 401
    bad = call(client, root, "POST", "/webhooks", {"url": receiver.url, "event_types": ["user.banned"]})
    assert bad.status_code == 422
    made = call(client, root, "POST", "/webhooks", {"url": receiver.url, "event_types": ["tenant.created"]})
    assert made.status_code == 201, made.content
    eid = made.json()["data"]["id"]
    assert made["Location"] == f"/api/v1/webhooks/{eid}"
    assert call(client, tenant_admin, "GET", f"/tenants/acme/webhooks/{eid}").status_code == 404  # not acme's
    make_tenant("initech")
    delivery.run_until_idle(Endpoint.objects.get(tenant__isnull=True).pk)
    receiver.received[0].verify(made.json()["data"]["secret"])
    log = call(client, root, "GET", f"/webhooks/{eid}/deliveries").json()["data"]
    assert [d["event_type"] for d in log] == ["tenant.created"] and log[0]["state"] == "succeeded"
    assert call(client, root, "PATCH", f"/webhooks/{eid}", {"enabled": False}).json()["data"]["enabled"] is False
    assert call(client, root, "DELETE", f"/webhooks/{eid}").status_code == 200
    assert not Endpoint.objects.exists()
