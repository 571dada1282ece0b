"""Webhooks in the deployed shape: an endpoint added with ``manage.py webhooks add`` (the secret
on its last line), changes made over HTTP through the API of gunicorn, delivered by the
Procfile's job worker to a receiver on 127.0.0.1, verified with ``standardwebhooks``; the API's
event feed lists the same ids."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.deployed import conftest as deployed
from tests.webhooks.conftest import Receiver, free_port

pytestmark = pytest.mark.deployed


def test_changes_over_http_arrive_signed_at_the_receiver(instance):
    receiver = Receiver(port=free_port()).start()
    try:
        out = instance.manage("webhooks", "add", deployed.TENANT, "--url", receiver.url,
                              "--events", "user.created,user.banned")
        secret = out.strip().splitlines()[-1]
        assert secret.startswith("whsec_")
        key = instance.manage("api_keys", "create", deployed.TENANT, "--role", "admin", "--name",
                              f"hooks {uuid.uuid4().hex[:6]}").strip().splitlines()[-1]
        headers = {"Authorization": f"Bearer {key}"}
        with instance.client() as http:
            made = http.post(f"/api/v1/tenants/{deployed.TENANT}/users", headers=headers,
                             json={"email": f"hook-{uuid.uuid4().hex[:8]}@example.com"})
            assert made.status_code == 201, made.text
            user_id = made.json()["data"]["id"]
            banned = http.post(f"/api/v1/tenants/{deployed.TENANT}/users/{user_id}/ban", headers=headers,
                               json={"duration": "1h"})
            assert banned.status_code == 200, banned.text
            deadline = time.monotonic() + 60
            while len(receiver.received) < 2 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert [r.json["type"] for r in receiver.received] == ["user.created", "user.banned"], \
                instance.log("jobs")[-3000:]
            for got in receiver.received:
                assert got.verify(secret)["data"]["user"]["id"] == user_id
            feed = http.get(f"/api/v1/tenants/{deployed.TENANT}/events", headers=headers, params={"limit": 500})
            assert feed.status_code == 200, feed.text
            ids = {e["id"] for e in feed.json()["data"] if e["data"].get("user", {}).get("id") == user_id}
            assert set(receiver.ids()) <= ids
        listed = instance.manage("webhooks", "list", deployed.TENANT)
        assert "delivered 2, pending 0, failed 0" in listed
    finally:
        receiver.stop()
    instance.assert_running()
