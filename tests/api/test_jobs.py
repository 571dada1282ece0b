"""The native API's batch jobs: a large batch answers 202 Accepted with its job (a staff token),
the job is followed to the end and cancelled through the API; another tenant's job is 404; a
service key's batches stay in the request."""

from __future__ import annotations

import pytest

from accounts.models import AppUser
from batchjobs import engine
from batchjobs.models import Job
from credentials.services import staff_token_create
from tenants import db as tenant_db
from tests.accounts.app_user_data import make_users
from tests.api.test_native import call

pytestmark = pytest.mark.django_db
LARGE = 260  # over policy().job_inline_max (200)


@pytest.fixture
def boss_token(staff_factory, acme):
    boss = staff_factory("boss-j@console.test", tenants={acme: "admin"})
    return staff_token_create(actor=boss, name="t")[1]


def banned(tenant) -> int:
    return AppUser.objects.using(tenant_db.using(tenant)).filter(banned_until__isnull=False).count()


def test_a_large_batch_is_202_with_its_job_followed_to_the_end(client, acme, boss_token):
    make_users(acme, LARGE, domain="wave.test")
    r = call(client, boss_token, "POST", "/tenants/acme/users/batch",
             {"action": "ban", "filter": {"q": "wave.test"}, "duration": "7d", "reason": "spam"})
    assert r.status_code == 202, r.content
    job = r.json()["data"]
    assert job["state"] == "queued" and job["total"] == LARGE and job["processed"] == 0
    assert r["Location"] == f"/api/v1/tenants/acme/jobs/{job['id']}"
    assert banned(acme) == 0  # on the workers, not in the request
    engine.run(job["id"], worker_id="test")
    done = call(client, boss_token, "GET", f"/tenants/acme/jobs/{job['id']}").json()["data"]
    assert (done["state"], done["processed"], done["percent"]) == ("done", LARGE, 100)
    assert banned(acme) == LARGE
    assert call(client, boss_token, "POST", f"/tenants/acme/jobs/{job['id']}/cancel").status_code == 409


def test_cancel_through_the_api_and_other_tenants_are_404(client, acme, globex, boss_token, staff_factory):
    make_users(acme, LARGE)
    job_id = call(client, boss_token, "POST", "/tenants/acme/users/batch",
                  {"action": "sign_out", "filter": {"q": "example"}}).json()["data"]["id"]
    outsider = staff_token_create(actor=staff_factory("g@console.test", tenants={globex: "admin"}), name="g")[1]
    assert call(client, outsider, "GET", f"/tenants/acme/jobs/{job_id}").status_code == 404
    assert call(client, outsider, "GET", f"/tenants/globex/jobs/{job_id}").status_code == 404
    assert call(client, outsider, "POST", f"/tenants/globex/jobs/{job_id}/cancel").status_code == 404
    r = call(client, boss_token, "POST", f"/tenants/acme/jobs/{job_id}/cancel")
    assert r.status_code == 200 and r.json()["data"]["state"] == "cancelled"
    assert Job.objects.get(pk=job_id).state == Job.State.CANCELLED


def test_a_support_token_cannot_start_a_ban_job(client, acme, staff_factory):
    make_users(acme, LARGE)
    token = staff_token_create(actor=staff_factory("s@console.test", tenants={acme: "support"}), name="s")[1]
    r = call(client, token, "POST", "/tenants/acme/users/batch", {"action": "ban", "filter": {"q": "example"}})
    assert r.status_code == 403 and not Job.objects.exists() and banned(acme) == 0


def test_a_service_keys_batch_stays_in_the_request(client, acme, api_key):
    make_users(acme, LARGE)
    r = call(client, api_key("admin"), "POST", "/tenants/acme/users/batch",
             {"action": "ban", "filter": {"q": "example"}, "duration": "1h"})
    assert r.status_code == 200 and r.json()["data"]["processed"] == LARGE and not Job.objects.exists()
