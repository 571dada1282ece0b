"""The job pages over HTTP: preview, start (now, in the request, or on the runner; scheduled),
live progress (htmx partial, no-JS refresh), cancel, undo, outcomes (pages, CSV), the tenant's
list, the users list's indicator, migrate --all from /tenants/; the role matrix of every job view
and another tenant's job answering 404."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import AppUser
from audit.models import AuditEntry
from batchjobs import services
from batchjobs.models import Job
from tenants import db as tenant_db
from tests.accounts.app_user_data import make_users
from tests.conftest import login_verified
from tests.jobs.conftest import everyone, run_all

pytestmark = pytest.mark.django_db


@pytest.fixture
def actors(staff_factory, acme):
    return {role: staff_factory(f"{role}-j@console.test", tenants={acme: role}) for role in ("admin", "support", "viewer")}


def client_of(user, **kwargs) -> Client:
    return login_verified(Client(), user, **kwargs)


def banned(tenant) -> int:
    return AppUser.objects.using(tenant_db.using(tenant)).filter(banned_until__isnull=False).count()


def preview(actor, tenant, action="ban", **options) -> Job:
    return services.batch_preview(actor=actor, tenant=tenant, action=action, selection=everyone(),
                                  options=options or ({"duration": "7d"} if action == "ban" else {}))


def test_a_large_batch_becomes_a_job_with_a_live_progress_page(acme, actors, settings):
    settings.JOBS_CHUNK_SIZE = 100
    settings.SECURITY_POLICY = {"job_inline_max": 50}
    from core.policy import policy
    policy.cache_clear()
    try:
        make_users(acme, 240, prefix="wave", domain="wave.test")
        admin = client_of(actors["admin"])
        response = admin.post("/t/acme/users/batch/", {"action": "ban", "scope": "all", "q": "wave.test",
                                                       "duration": "forever", "confirm": "1"})
        url = response["Location"]
        page = admin.get(url).content.decode()
        assert "Ban 240 users?" in page and "can be started until" in page and "data-sample" in page
        assert admin.post(url + "start/", {"when": "now"})["Location"] == url
        assert banned(acme) == 0  # too large to run in the request: queued for the workers
        page = admin.get(url).content.decode()
        assert 'hx-trigger="every 2s"' in page and '<meta http-equiv="refresh"' in page
        assert admin.get("/t/acme/users/").content.decode().count("data-job=") == 1  # the indicator
        job = Job.objects.get(pk=url.rstrip("/").rsplit("/", 1)[1])
        run_all(job, max_chunks=1)
        partial = admin.get(url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="job-progress").content.decode()
        assert partial.startswith('\n<section id="job-progress"') or '<section id="job-progress"' in partial[:200]
        assert "<html" not in partial and "data-processed>100<" in partial and "/s" in partial
        run_all(job)
        # The poll that sees the end reloads the page once; the page no longer polls.
        assert admin.get(url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="job-progress")["HX-Refresh"] == "true"
        page = admin.get(url).content.decode()
        assert "hx-trigger" not in page.split('id="job-outcomes"')[0].split('id="job-progress"')[1]
        assert "data-processed>240<" in page and 'id="job-undo"' in page and "http-equiv" not in page
        assert banned(acme) == 240
        assert admin.get("/t/acme/users/").content.decode().count("data-job=") == 0
    finally:
        policy.cache_clear()


def test_outcomes_are_browsable_by_result_and_downloadable_as_csv(acme, actors, settings):
    settings.JOBS_CHUNK_SIZE = 100
    make_users(acme, 130)
    job = preview(actors["admin"], acme, "unban")  # nobody is banned: every one skipped
    job = services.job_start(actor=actors["admin"], tenant=acme, job_id=job.pk, inline=False)
    run_all(job)
    support = client_of(actors["support"])
    url = f"/t/acme/jobs/{job.pk}/"
    page = support.get(url + "?result=skipped").content.decode()
    assert page.count('>skipped</span></td>') == 50 and 'id="outcomes-next"' in page
    second = support.get(url + "?result=skipped&after=50").content.decode()
    assert ">51<" in second and ">100<" in second
    response = support.get(url + "outcomes.csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["seq", "line", "user_id", "email", "result", "reason"] and len(rows) == 131
    assert {r[4] for r in rows[1:]} == {"skipped"}
    assert client_of(actors["viewer"]).get(url + "outcomes.csv").status_code == 403


def test_schedule_then_cancel_before_it_starts(acme, actors):
    make_users(acme, 3)
    admin = client_of(actors["admin"])
    job = preview(actors["admin"], acme)
    url = f"/t/acme/jobs/{job.pk}/"
    at = timezone.localtime(timezone.now() + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    admin.post(url + "start/", {"when": "later", "run_at": at})
    job.refresh_from_db()
    assert job.state == Job.State.SCHEDULED and job.scheduled_for > timezone.now()
    page = admin.get(url).content.decode()
    assert "scheduled for" in page and "Cancel the scheduled job" in page
    assert "scheduled for" in admin.get("/t/acme/users/").content.decode()
    admin.post(url + "cancel/")
    job.refresh_from_db()
    assert job.state == Job.State.CANCELLED and banned(acme) == 0
    assert AuditEntry.objects.filter(event="job.cancel", object_pk=str(job.pk)).count() == 1
    # A time in the past is refused clearly.
    other = preview(actors["admin"], acme)
    past = timezone.localtime(timezone.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    response = admin.post(f"/t/acme/jobs/{other.pk}/start/", {"when": "later", "run_at": past}, follow=True)
    assert "Choose a time in the future." in response.content.decode()


def test_undo_from_the_job_page(acme, actors):
    make_users(acme, 4)
    admin = client_of(actors["admin"])
    job = preview(actors["admin"], acme)
    admin.post(f"/t/acme/jobs/{job.pk}/start/", {"when": "now"})
    assert banned(acme) == 4
    response = admin.post(f"/t/acme/jobs/{job.pk}/undo/")
    undo = Job.objects.get(undo_of=job)
    assert response["Location"] == f"/t/acme/jobs/{undo.pk}/"
    assert banned(acme) == 0 and undo.state == Job.State.DONE
    assert 'id="job-undone"' in admin.get(f"/t/acme/jobs/{job.pk}/").content.decode()
    assert "already undone" in admin.post(f"/t/acme/jobs/{job.pk}/undo/", follow=True).content.decode()


def test_discarding_a_preview_changes_nothing(acme, actors):
    make_users(acme, 2)
    job = preview(actors["admin"], acme)
    response = client_of(actors["admin"]).post(f"/t/acme/jobs/{job.pk}/cancel/")
    assert response["Location"] == "/t/acme/users/"
    job.refresh_from_db()
    assert job.state == Job.State.EXPIRED and banned(acme) == 0


def test_the_jobs_list_shows_who_what_when_how_many_state(acme, actors):
    make_users(acme, 2)
    job = preview(actors["admin"], acme, "sign_out")
    services.job_start(actor=actors["admin"], tenant=acme, job_id=job.pk)
    page = client_of(actors["viewer"]).get("/t/acme/jobs/").content.decode()
    assert "Sign out everywhere" in page and actors["admin"].email in page and ">done<" in page
    assert "2 / 2" in page


def test_migrate_all_from_tenants_runs_as_a_job_with_the_progress_page(acme, globex, staff_factory):
    root = client_of(staff_factory("root-j@console.test", superuser=True))
    response = root.post("/tenants/migrate/")
    url = response["Location"]
    assert url.startswith("/jobs/")
    job = Job.objects.get(pk=url.strip("/").split("/")[1])
    assert job.kind == Job.Kind.MIGRATE and job.state == Job.State.QUEUED
    run_all(job)
    page = root.get(url).content.decode()
    assert "Migrate every tenant" in page and "acme" in page and "globex" in page and "data-processed>" in page
    assert "Migrations of every tenant" in root.get("/tenants/").content.decode()
    # Not for tenant staff: the page does not exist for them.
    tenant_admin = client_of(staff_factory("ta-j@console.test", tenants={acme: "admin"}))
    assert tenant_admin.get(url).status_code == 404
    assert tenant_admin.post(url + "cancel/").status_code == 404


# --- The role matrix and tenant scoping of every job view ---------------------------------------------

VIEWS = [
    ("get", "", {"admin": 200, "support": 200, "viewer": 200}),
    ("get", "outcomes.csv", {"admin": 200, "support": 200, "viewer": 403}),
    ("post", "cancel/", {"admin": 302, "support": 403, "viewer": 403}),
    ("post", "undo/", {"admin": 302, "support": 403, "viewer": 403}),
]


@pytest.mark.parametrize("method, suffix, expected", VIEWS)
def test_the_role_matrix_of_the_job_views(acme, actors, method, suffix, expected):
    make_users(acme, 2)
    for role, status in expected.items():
        job = preview(actors["admin"], acme)
        job = services.job_start(actor=actors["admin"], tenant=acme, job_id=job.pk)
        if suffix == "cancel/":  # something to cancel: scheduled
            job = preview(actors["admin"], acme)
            job = services.job_start(actor=actors["admin"], tenant=acme, job_id=job.pk,
                                     run_at=timezone.now() + timedelta(hours=1))
        response = getattr(client_of(actors[role]), method)(f"/t/acme/jobs/{job.pk}/{suffix}")
        assert response.status_code == status, (role, suffix, response.status_code)
    # Cancelling or undoing as support or viewer changed nothing.
    assert not Job.objects.filter(cancelled_by__in=[actors["support"], actors["viewer"]]).exists()
    assert not Job.objects.filter(undo_of__isnull=False).exclude(actor=actors["admin"]).exists()


def test_a_support_member_cannot_start_a_ban_job(acme, actors):
    make_users(acme, 2)
    support = client_of(actors["support"])
    assert support.post("/t/acme/users/batch/", {"action": "ban", "scope": "all", "confirm": "1",
                                                 "duration": "24h"}).status_code == 403
    job = preview(actors["admin"], acme)  # the admin's preview: not support's to start
    assert support.post(f"/t/acme/jobs/{job.pk}/start/", {"when": "now"}).status_code == 404
    assert banned(acme) == 0 and not Job.objects.exclude(actor=actors["admin"]).exists()


@pytest.mark.parametrize("method, suffix", [
    ("get", ""), ("get", "outcomes.csv"), ("post", "start/"), ("post", "cancel/"), ("post", "undo/"),
])
def test_a_job_of_tenant_a_is_404_under_tenant_b(acme, globex, actors, staff_factory, method, suffix):
    make_users(acme, 2)
    job = preview(actors["admin"], acme)
    both = staff_factory("both-j@console.test", tenants={acme: "admin", globex: "admin"})
    client = client_of(both)
    response = getattr(client, method)(f"/t/globex/jobs/{job.pk}/{suffix}", {"when": "now"} if method == "post" else None)
    assert response.status_code == 404
    outsider = client_of(staff_factory("out-j@console.test", tenants={globex: "admin"}))
    assert getattr(outsider, method)(f"/t/acme/jobs/{job.pk}/{suffix}").status_code == 404
    job.refresh_from_db()
    assert job.state == Job.State.PREVIEW and banned(acme) == 0
    assert client.get("/t/globex/jobs/").content.decode().count(str(job.pk)) == 0


def test_the_jobs_list_and_indicator_for_every_role_and_404_for_an_outsider(acme, globex, actors, staff_factory):
    for role in ("admin", "support", "viewer"):
        client = client_of(actors[role])
        assert client.get("/t/acme/jobs/").status_code == 200
        assert client.get("/t/acme/jobs/indicator/").status_code == 200
    outsider = client_of(staff_factory("out2-j@console.test", tenants={globex: "admin"}))
    assert outsider.get("/t/acme/jobs/").status_code == 404
    assert outsider.get("/t/acme/jobs/indicator/").status_code == 404
