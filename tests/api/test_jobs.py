"""The native API's batch jobs: a large batch answers 202 Accepted with its job (a staff token or
a service key), the job is followed to the end and cancelled through the API; another tenant's
job is 404; a key's job stops once the key is revoked; every console batch action is accepted."""

from __future__ import annotations

import pytest

from accounts.models import AppUser
from audit.models import AuditEntry
from batchjobs import engine
from batchjobs.models import Job
from credentials.models import ApiKey
from credentials.services import api_key_revoke, staff_token_create
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


def test_a_service_keys_large_batch_is_a_job_that_names_the_key(client, acme, api_key):
    make_users(acme, LARGE)
    raw = api_key("admin")
    key = ApiKey.objects.get(tenant=acme)
    r = call(client, raw, "POST", "/tenants/acme/users/batch",
             {"action": "ban", "filter": {"q": "example"}, "duration": "1h", "reason": "bots"})
    assert r.status_code == 202, r.content
    job = r.json()["data"]
    assert r["Location"] == f"/api/v1/tenants/acme/jobs/{job['id']}"
    assert job["state"] == "queued" and job["total"] == LARGE and job["actor"] == f"api-key:{key.prefix}"
    stored = Job.objects.get(pk=job["id"])
    assert stored.actor_id is None and stored.api_key_id == key.pk and banned(acme) == 0
    engine.run(job["id"], worker_id="test")
    done = call(client, raw, "GET", f"/tenants/acme/jobs/{job['id']}").json()["data"]
    assert (done["state"], done["processed"]) == ("done", LARGE) and banned(acme) == LARGE
    entries = AuditEntry.objects.filter(event__in=["app_user.ban", "job.start", "job.finish"])
    assert entries.filter(event="app_user.ban").count() == LARGE
    assert {e.event for e in entries} == {"app_user.ban", "job.start", "job.finish"}
    for e in entries:
        assert e.actor_id is None and e.actor_email == f"api-key:{key.prefix}", e.event
        assert e.additional_data["via"] == "api" and e.additional_data["credential_prefix"] == key.prefix, e.event


def test_a_viewer_key_is_refused_and_starts_nothing(client, acme, api_key):
    make_users(acme, LARGE)
    r = call(client, api_key("viewer"), "POST", "/tenants/acme/users/batch",
             {"action": "ban", "filter": {"q": "example"}, "duration": "1h"})
    assert r.status_code == 403, r.content
    assert not Job.objects.exists() and banned(acme) == 0


def test_a_key_revoked_after_the_start_stops_its_job(client, acme, api_key, staff_factory, settings):
    settings.JOBS_CHUNK_SIZE = 100
    make_users(acme, LARGE)
    raw = api_key("admin")
    job_id = call(client, raw, "POST", "/tenants/acme/users/batch",
                  {"action": "sign_out", "filter": {"q": "example"}}).json()["data"]["id"]
    engine.run(job_id, worker_id="test", max_chunks=1)
    boss = staff_factory("keys@console.test", tenants={acme: "admin"})
    api_key_revoke(actor=boss, tenant=acme, ref=ApiKey.objects.get(tenant=acme).pk)
    engine.run(job_id, worker_id="test")
    job = Job.objects.get(pk=job_id)
    assert job.state == Job.State.FAILED and job.processed == 100 and "may no longer" in job.last_error
    failed = AuditEntry.objects.get(event="job.fail")
    assert failed.actor_email.startswith("api-key:acsk_")


def test_a_key_of_another_tenant_never_sees_the_job(client, acme, globex, api_key, boss_token):
    make_users(acme, LARGE)
    job_id = call(client, boss_token, "POST", "/tenants/acme/users/batch",
                  {"action": "sign_out", "filter": {"q": "example"}}).json()["data"]["id"]
    other = api_key("admin", tenant=globex)
    assert call(client, other, "GET", f"/tenants/globex/jobs/{job_id}").status_code == 404
    assert call(client, other, "POST", f"/tenants/globex/jobs/{job_id}/cancel").status_code == 404
    assert call(client, other, "GET", f"/tenants/acme/jobs/{job_id}").status_code == 404
    assert Job.objects.get(pk=job_id).state == Job.State.QUEUED


def _ids(users) -> list[str]:
    return [str(u.pk) for u in users]


def test_every_console_action_is_accepted_inline(client, acme, api_key):
    raw = api_key("admin")
    alias = tenant_db.using(acme)
    unconfirmed = make_users(acme, 3, prefix="new", email_confirmed_at=None)
    r = call(client, raw, "POST", "/tenants/acme/users/batch", {"action": "confirm_email", "user_ids": _ids(unconfirmed)})
    assert r.status_code == 200, r.content
    assert (r.json()["data"]["processed"], r.json()["data"]["success"]) == (3, True)
    assert not AppUser.objects.using(alias).filter(email__startswith="new", email_confirmed_at=None).exists()

    staff = make_users(acme, 2, prefix="crew")
    r = call(client, raw, "POST", "/tenants/acme/users/batch",
             {"action": "change_role", "user_ids": _ids(staff), "role": "admin"})
    assert r.status_code == 200 and r.json()["data"]["processed"] == 2, r.content
    assert set(AppUser.objects.using(alias).filter(email__startswith="crew").values_list("role", flat=True)) == {"admin"}
    r = call(client, raw, "POST", "/tenants/acme/users/batch",
             {"action": "change_role", "user_ids": _ids(staff), "role": "wizard"})
    assert r.status_code == 422 and "Unknown role" in r.json()["error"]["message"], r.content

    linked = make_users(acme, 2, prefix="link")
    r = call(client, raw, "POST", "/tenants/acme/users/batch", {"action": "send_magic_link", "user_ids": _ids(linked)})
    assert r.status_code == 200 and r.json()["data"]["processed"] == 2, r.content
    assert AuditEntry.objects.filter(event="app_user.magic_link_sent").count() == 2

    gone = make_users(acme, 2, prefix="gone")
    r = call(client, raw, "POST", "/tenants/acme/users/batch", {"action": "hard_delete", "user_ids": _ids(gone)})
    assert r.status_code == 200 and r.json()["data"]["processed"] == 2, r.content
    assert not AppUser.objects.using(alias).filter(email__startswith="gone").exists()
    assert Job.objects.filter(state=Job.State.DONE).count() == 4  # each ran as a job, in the request
