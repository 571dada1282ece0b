"""``/tenants/``: list, create with progress, failure and retry, edit, lifecycle, purge, migrate."""

from __future__ import annotations

import re

import pytest

from accounts.app_users import figures
from accounts.models import AppUser
from audit.models import AuditEntry
from batchjobs import engine
from batchjobs.models import Job
from tenants import db as tenant_db
from tenants import services
from tenants.models import Tenant

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _drop_web_created_tenants(db):
    """Tenants created through the pages (not make_tenant) get their databases dropped too."""
    yield
    for tenant in Tenant.objects.all():
        tenant_db.drop_database(tenant)


@pytest.fixture
def admin(staff_factory, as_staff):
    user = staff_factory("root@console.test", superuser=True)
    as_staff(user)
    return user


def test_list_shows_status_users_placement_and_schema(client, admin, make_tenant):
    acme = make_tenant("acme", "Acme Corp")
    AppUser.objects.using(tenant_db.using(acme)).create(email="a@acme.test")
    AppUser.objects.using(tenant_db.using(acme)).create(email="b@acme.test")
    globex = make_tenant("globex")
    services.tenant_suspend(actor=admin, tenant=globex)
    figures.figures_refresh(acme)  # rows written behind the services' back: counted now
    response = client.get("/tenants/")
    assert response.status_code == 200
    html = response.content.decode()
    row = re.search(r'<tr data-slug="acme">(.*?)</tr>', html, re.S).group(1)
    assert "Acme Corp" in row and "Active" in row
    assert re.search(r'<td class="num"[^>]*>2</td>', row)
    assert acme.db_name in row and "default" in row
    assert "Current" in row
    assert "Suspended" in re.search(r'<tr data-slug="globex">(.*?)</tr>', html, re.S).group(1)


def test_list_marks_a_tenant_behind_and_migrate_all_reports_each(client, admin, make_tenant):
    acme = make_tenant("acme")
    make_tenant("globex")
    tenant_db.migrate_database(acme, target=[("accounts", "0001_initial")])
    acme.schema_version = tenant_db.applied_schema_version(acme)
    acme.save(update_fields=["schema_version"])
    html = client.get("/tenants/").content.decode()
    assert "Behind" in re.search(r'<tr data-slug="acme">(.*?)</tr>', html, re.S).group(1)
    assert "Migrate all (1 behind)" in html

    response = client.post("/tenants/migrate/")
    job = Job.objects.get(pk=response["Location"].strip("/").split("/")[1])  # a job on the runner
    engine.run(job.pk, worker_id="test")
    html = client.get(response["Location"]).content.decode()
    assert "Migrate every tenant" in html and 'id="job-state">done<' in html
    assert re.search(r"acme</td><td>.*?>done<.*?Migrated to accounts", html)
    assert re.search(r"globex</td><td>.*?>done<.*?Already current", html)
    assert "Migrations of every tenant" in client.get("/tenants/").content.decode()
    acme.refresh_from_db()
    assert not tenant_db.is_behind(acme)


def test_user_count_of_an_unreachable_database_is_shown_not_raised(client, admin, make_tenant, monkeypatch):
    acme = make_tenant("acme")
    from django.db import OperationalError

    from accounts.app_users import stats

    def down(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(stats, "count", down)
    monkeypatch.setattr(stats, "_table_estimate", down)
    monkeypatch.setattr(figures, "count", down)
    figures.figures_refresh(acme)  # the job runner's count: the database did not answer
    response = client.get("/tenants/")
    assert response.status_code == 200
    assert "unreachable" in re.search(r'<tr data-slug="acme">(.*?)</tr>', response.content.decode(), re.S).group(1)
    assert client.get(f"/tenants/{acme.slug}/").status_code == 200


def test_create_without_javascript_runs_every_step(client, admin):
    response = client.post("/tenants/new/", {"slug": "initech", "name": "Initech", "metadata": '{"plan": "pro"}'})
    assert response.status_code == 302 and response["Location"] == "/tenants/initech/"
    tenant = Tenant.objects.get(slug="initech")
    assert tenant.status == Tenant.Status.ACTIVE
    assert tenant.metadata == {"plan": "pro"}
    assert tenant_db.database_exists(tenant)
    page = client.get("/tenants/initech/").content.decode()
    assert "Tenant initech is active." in page


def test_create_with_htmx_shows_each_step(client, admin):
    response = client.post("/tenants/new/", {"slug": "initech", "name": "Initech"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and response["HX-Redirect"] == "/tenants/initech/"
    tenant = Tenant.objects.get(slug="initech")
    assert tenant.status == Tenant.Status.PROVISIONING  # only the record so far

    page = client.get("/tenants/initech/").content.decode()
    assert 'id="provision-steps"' in page
    assert re.search(r'data-step="database" hx-post="/tenants/initech/retry/" hx-vals=\'\{"step": "database"\}\' hx-trigger="load', page)

    steps = []
    for step in ("database", "migrate", "activate"):
        fragment = client.post("/tenants/initech/retry/", {"step": step}, HTTP_HX_REQUEST="true")
        assert fragment.status_code == 200
        steps.append(fragment.content.decode())
    assert "Created." in steps[0]
    assert 'data-step="migrate" hx-post' in steps[0]  # the next step runs by itself
    assert "Schema accounts" in steps[1] and 'data-step="activate" hx-post' in steps[1]
    assert "The tenant is active." in steps[2] and "hx-post" not in steps[2]  # the chain ends
    assert 'id="tenant-status" hx-swap-oob="true"' in steps[2] and "Active" in steps[2]
    tenant.refresh_from_db()
    assert tenant.status == Tenant.Status.ACTIVE
    # Then the page asks for itself once, and gets a full refresh (never a fragment swap).
    refresh = client.get("/tenants/initech/", HTTP_HX_REQUEST="true")
    assert refresh["HX-Refresh"] == "true"
    assert "Tenant initech is active." in client.get("/tenants/initech/").content.decode()


def test_create_failure_shows_the_error_and_retry_succeeds(client, admin, monkeypatch):
    real_create = tenant_db.create_database

    def broken(tenant):
        raise tenant_db.TenantDatabaseError("permission denied to create database")

    monkeypatch.setattr(tenant_db, "create_database", broken)
    client.post("/tenants/new/", {"slug": "initech", "name": "Initech"}, HTTP_HX_REQUEST="true")
    fragment = client.post("/tenants/initech/retry/", {"step": "database"}, HTTP_HX_REQUEST="true")
    html = fragment.content.decode()
    assert fragment.status_code == 200
    assert "The creation stopped." in html and "permission denied to create database" in html
    assert 'class="step step-failed" data-step="database"' in html
    assert ">Retry</button>" in html and "hx-trigger" not in html  # no automatic loop
    tenant = Tenant.objects.get(slug="initech")
    assert tenant.status == Tenant.Status.FAILED

    page = client.get("/tenants/initech/").content.decode()
    assert "permission denied to create database" in page and ">Retry</button>" in page
    assert "Failed" in page

    monkeypatch.setattr(tenant_db, "create_database", real_create)
    fragment = client.post("/tenants/initech/retry/", {"step": "database"}, HTTP_HX_REQUEST="true")
    html = fragment.content.decode()
    assert "Created." in html and "The creation stopped." not in html
    assert 'data-step="migrate" hx-post' in html  # the chain resumes
    tenant.refresh_from_db()
    assert tenant.status == Tenant.Status.PROVISIONING and tenant.last_error == ""


def test_plain_retry_finishes_a_failed_creation(client, admin, monkeypatch):
    def broken(tenant):
        raise tenant_db.TenantDatabaseError("server unreachable")

    real_create = tenant_db.create_database
    monkeypatch.setattr(tenant_db, "create_database", broken)
    response = client.post("/tenants/new/", {"slug": "initech", "name": "Initech"}, follow=True)
    assert "server unreachable" in response.content.decode()
    assert Tenant.objects.get(slug="initech").status == Tenant.Status.FAILED
    monkeypatch.setattr(tenant_db, "create_database", real_create)
    response = client.post("/tenants/initech/retry/", follow=True)
    assert "Tenant initech is active." in response.content.decode()
    assert Tenant.objects.get(slug="initech").status == Tenant.Status.ACTIVE


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"slug": "Bad Slug", "name": "X"}, "lower-case letters"),
        ({"slug": "admin", "name": "X"}, "reserved"),
        ({"slug": "ok", "name": ""}, "This field is required"),
        ({"slug": "ok", "name": "X", "metadata": "[1, 2]"}, "JSON object"),
        ({"slug": "ok", "name": "X", "metadata": "{nope"}, "Not valid JSON"),
        ({"slug": "ok", "name": "X" * 201}, "at most 200"),
        ({"slug": "ok", "name": "Evil\u202eName"}, "text-direction"),
        ({"slug": "ok", "name": "X", "metadata": '{"a": "\\u0000"}'}, "NUL"),
    ],
)
def test_create_refuses_bad_input_with_a_message(client, admin, data, message):
    response = client.post("/tenants/new/", data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Tenant.objects.filter(slug=data["slug"]).exists()


def test_create_refuses_an_existing_slug(client, admin, make_tenant):
    make_tenant("acme")
    response = client.post("/tenants/new/", {"slug": "acme", "name": "Again"})
    assert response.status_code == 400 and "already exists" in response.content.decode()


def test_edit_name_and_metadata_is_audited(client, admin, make_tenant):
    acme = make_tenant("acme")
    response = client.post(f"/tenants/{acme.slug}/edit/", {"name": "Acme Inc", "metadata": '{"plan": "gold"}'})
    assert response.status_code == 302
    acme.refresh_from_db()
    assert acme.name == "Acme Inc" and acme.metadata == {"plan": "gold"}
    entry = AuditEntry.objects.get(tenant=acme, event="tenant.update")
    assert entry.changes["name"] == ["Acme", "Acme Inc"] and entry.actor == admin
    bad = client.post(f"/tenants/{acme.slug}/edit/", {"name": "", "metadata": "{}"})
    assert bad.status_code == 400 and "This field is required" in bad.content.decode()


def test_suspend_resume_delete_restore(client, admin, make_tenant):
    acme = make_tenant("acme")
    for verb, status in [("suspend", "suspended"), ("resume", "active"), ("delete", "deleted"),
                         ("restore", "active")]:
        response = client.post(f"/tenants/acme/{verb}/", follow=True)
        assert response.status_code == 200
        acme.refresh_from_db()
        assert acme.status == status, verb
    # A refused transition is a message, not an error page.
    response = client.post("/tenants/acme/resume/", follow=True)
    assert response.status_code == 200
    assert client.get("/tenants/acme/suspend/").status_code == 405
    assert client.post("/tenants/acme/explode/").status_code == 404


def test_soft_delete_needs_a_recent_otp_like_purge(client, admin, make_tenant, as_staff):
    """Issue 11, finding 8: a soft delete closes the tenant at once; it asks for a fresh code."""
    acme = make_tenant("acme")
    as_staff(admin, otp_age_seconds=3600)
    stale = client.post("/tenants/acme/delete/", HTTP_REFERER="http://testserver/tenants/acme/")
    assert stale.status_code == 302 and stale["Location"].startswith("/account/reverify/")
    assert "pending=" in stale["Location"]
    acme.refresh_from_db()
    assert acme.status == Tenant.Status.ACTIVE
    page = client.get(stale["Location"]).content.decode()
    assert "Delete the tenant acme" in page
    # Suspend (reversible, keeps everything) still needs no fresh code.
    assert client.post("/tenants/acme/suspend/").status_code == 302
    acme.refresh_from_db()
    assert acme.status == Tenant.Status.SUSPENDED
    as_staff(admin)
    assert client.post("/tenants/acme/delete/").status_code == 302
    acme.refresh_from_db()
    assert acme.status == Tenant.Status.DELETED


def test_purge_needs_the_slug_typed_and_a_recent_otp(client, admin, make_tenant, as_staff):
    acme = make_tenant("acme")
    services.tenant_delete(actor=admin, tenant=acme)
    wrong = client.post("/tenants/acme/purge/", {"confirm_slug": "acm"})
    assert wrong.status_code == 400 and "Type the tenant" in wrong.content.decode()
    assert tenant_db.database_exists(acme)

    as_staff(admin, otp_age_seconds=3600)  # verified an hour ago: step-up first
    stale = client.post("/tenants/acme/purge/", {"confirm_slug": "acme"})
    assert stale.status_code == 302 and stale["Location"].startswith("/account/reverify/")
    assert tenant_db.database_exists(acme)

    as_staff(admin)
    response = client.post("/tenants/acme/purge/", {"confirm_slug": "acme"})
    assert response.status_code == 302
    acme.refresh_from_db()
    assert acme.status == Tenant.Status.PURGED and not tenant_db.database_exists(acme)
    assert "purged" in client.get("/tenants/acme/").content.decode().lower()


def test_migrate_one_reports_the_result(client, admin, make_tenant):
    make_tenant("acme")
    response = client.post("/tenants/acme/migrate/", follow=True)
    assert "acme: Already current: accounts" in response.content.decode()


def test_get_never_changes_anything(client, admin, make_tenant):
    make_tenant("acme")
    for path in ("/tenants/acme/suspend/", "/tenants/acme/purge/", "/tenants/migrate/",
                 "/tenants/acme/retry/", "/tenants/acme/edit/"):
        assert client.get(path).status_code == 405, path
    assert Tenant.objects.get(slug="acme").status == Tenant.Status.ACTIVE


@pytest.mark.parametrize("role", ["admin", "support", "viewer"])
def test_tenant_roles_do_not_see_the_tenants_pages(client, staff_factory, as_staff, make_tenant, role):
    acme = make_tenant("acme")
    as_staff(staff_factory(tenants={acme: role}))
    for path in ("/tenants/", "/tenants/new/", "/tenants/acme/"):
        assert client.get(path).status_code == 404, path
    assert client.post("/tenants/acme/suspend/").status_code == 404
    assert client.post("/tenants/new/", {"slug": "x1", "name": "X"}).status_code == 404
    assert Tenant.objects.get(slug="acme").status == Tenant.Status.ACTIVE
    assert not Tenant.objects.filter(slug="x1").exists()


def test_unknown_tenant_is_404(client, admin):
    assert client.get("/tenants/nope/").status_code == 404
    assert client.post("/tenants/nope/suspend/").status_code == 404


def test_signed_out_visitors_are_sent_to_sign_in(client, make_tenant):
    make_tenant("acme")
    response = client.get("/tenants/")
    assert response.status_code == 302
    assert response["Location"].startswith(("/login/", "/setup/"))
