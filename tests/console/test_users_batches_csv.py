"""Batches over HTTP (options, the frozen preview, the job page, "all matching", roles, OTP),
CSV export (streamed, filtered, formula-safe), CSV import (a previewed job, idempotent) and the
invitations page."""

from __future__ import annotations

import csv
import io
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from accounts.app_users.csv_io import app_user_export, export_cell
from accounts.app_users.selectors import UserFilters
from accounts.models import BANNED_FOREVER, AppUser
from audit.models import AuditEntry
from core.errors import Refused
from core.policy import policy
from outbox.models import OutboxMessage
from tenants import db as tenant_db
from tests.accounts.app_user_data import make_user, make_users, reload
from tests.conftest import login_verified

pytestmark = pytest.mark.django_db


def banned(tenant) -> set[str]:
    return set(AppUser.objects.using(tenant_db.using(tenant)).filter(banned_until__isnull=False).values_list("email", flat=True))


# --- Batches: options, a frozen preview, then a job ---------------------------------------------


def _preview(client, data) -> str:
    """Post a batch (options confirmed) and return the preview page's URL."""
    response = client.post("/t/acme/users/batch/", {"confirm": "1", **data})
    assert response.status_code == 302 and "/t/acme/jobs/" in response["Location"], response
    return response["Location"]


def _start(client, url: str) -> str:
    response = client.post(url + "start/", {"when": "now"})
    assert response.status_code == 302
    return response["Location"]


def test_batch_ban_of_selected_rows_previews_the_count_then_reports(acme, staff):
    users = make_users(acme, 5)
    ids = [str(u.pk) for u in users[:3]]
    admin = staff("admin")
    options = admin.post("/t/acme/users/batch/", {"action": "ban", "scope": "selected", "ids": ids})
    assert options.status_code == 200 and 'name="duration"' in options.content.decode()
    url = _preview(admin, {"action": "ban", "scope": "selected", "ids": ids, "duration": "24h"})
    page = admin.get(url).content.decode()
    assert "Ban 3 users?" in page and "job-start" in page
    assert banned(acme) == set()  # the options and the preview change nothing
    done = admin.get(_start(admin, url)).content.decode()  # small: run in the request
    assert banned(acme) == {u.email for u in users[:3]}
    assert 'data-processed>3<' in done and 'data-errors>0<' in done and "done" in done


def test_batch_on_all_matching_uses_the_filter(acme, staff):
    make_users(acme, 7, prefix="spam", domain="bad.test")
    make_users(acme, 4, prefix="good")
    admin = staff("admin")
    url = _preview(admin, {"action": "ban", "scope": "all", "q": "bad.test", "duration": "forever"})
    assert "Ban 7 users?" in admin.get(url).content.decode()
    _start(admin, url)
    assert banned(acme) == {f"spam{i:05d}@bad.test" for i in range(7)}
    assert AppUser.objects.using(tenant_db.using(acme)).filter(banned_until=BANNED_FOREVER).count() == 7


def test_batch_preview_and_outcomes_report_skips_by_user(acme, staff):
    users = make_users(acme, 3)
    root = make_user(acme, "root@example.test", role="admin")
    support = staff("support")
    url = _preview(support, {"action": "sign_out", "scope": "selected", "ids": [str(u.pk) for u in [*users, root]]})
    page = support.get(url).content.decode()
    assert "Sign out everywhere 3 users?" in page and "1 will be skipped" in page and "protected" in page
    result = support.get(_start(support, url)).content.decode()
    assert 'data-processed>3<' in result and 'data-skipped>1<' in result
    assert "root@example.test" in result and "protected" in result


def test_support_cannot_run_admin_batches_and_viewer_none(acme, staff):
    users = make_users(acme, 2)
    ids = [str(u.pk) for u in users]
    assert staff("support").post("/t/acme/users/batch/", {"action": "delete", "scope": "selected", "ids": ids,
                                                          "confirm": "1"}).status_code == 403
    assert staff("support").post("/t/acme/users/batch/", {"action": "ban", "scope": "all",
                                                          "confirm": "1", "duration": "24h"}).status_code == 403
    assert staff("viewer").post("/t/acme/users/batch/", {"action": "sign_out", "scope": "selected", "ids": ids,
                                                         "confirm": "1"}).status_code == 403
    assert not AppUser.objects.using(tenant_db.using(acme)).filter(deleted_at__isnull=False).exists()


def test_destructive_batches_need_a_recent_otp(acme, staff):
    users = make_users(acme, 2)
    response = staff("admin", otp_age_seconds=3600).post(
        "/t/acme/users/batch/", {"action": "delete", "scope": "selected", "ids": [str(u.pk) for u in users],
                                 "confirm": "1"})
    assert response.status_code == 302 and response["Location"].startswith("/account/reverify/")
    assert not AppUser.objects.using(tenant_db.using(acme)).filter(deleted_at__isnull=False).exists()
    # Gentle batches do not.
    response = staff("admin", otp_age_seconds=3600).post(
        "/t/acme/users/batch/", {"action": "sign_out", "scope": "selected", "ids": [str(u.pk) for u in users],
                                 "confirm": "1"})
    assert "/t/acme/jobs/" in response["Location"]


def test_batch_beyond_the_job_cap_is_refused_clearly(acme, staff, settings):
    make_users(acme, 6)
    settings.SECURITY_POLICY = {"job_max_users": 5}
    policy.cache_clear()
    try:
        response = staff("admin").post("/t/acme/users/batch/", {"action": "delete", "scope": "all", "confirm": "1"},
                                       follow=True)
        assert "more than 5 users" in response.content.decode()
    finally:
        policy.cache_clear()
    assert not AppUser.objects.using(tenant_db.using(acme)).filter(deleted_at__isnull=False).exists()


def test_batch_with_bad_input_changes_nothing(acme, staff):
    make_users(acme, 2)
    admin = staff("admin")
    for data in ({"action": "explode", "scope": "selected", "ids": ["x"]},
                 {"action": "ban", "scope": "selected", "ids": ["not-a-uuid"], "confirm": "1", "duration": "24h"},
                 {"action": "ban", "scope": "selected", "confirm": "1", "duration": "24h"}):
        response = admin.post("/t/acme/users/batch/", data, follow=True)
        assert response.status_code == 200 and "flash-error" in response.content.decode()
    bad_until = admin.post("/t/acme/users/batch/", {"action": "ban", "scope": "all", "confirm": "1",
                                                    "duration": "until"})
    assert bad_until.status_code == 400 and "Choose the date" in bad_until.content.decode()
    assert banned(acme) == set()


# --- CSV export ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    ("=1+1", "'=1+1"), ("+cmd", "'+cmd"), ("-2", "'-2"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\tx", "'\tx"), ("\rx", "'\rx"), ("  =1", "'  =1"), ("plain", "plain"), (None, ""), (True, "true"),
    (False, "false"),
])
def test_export_cell(value, expected):
    """The export's cells follow the one CSV rule of ``core.csv_safety``."""
    assert export_cell(value) == expected


def test_the_export_service_audits_before_a_line_is_read(acme, staff_factory):
    make_user(acme, "ann@example.test")
    support = staff_factory("s@console.test", tenants={acme: "support"})
    lines = app_user_export(actor=support, tenant=acme, filters=UserFilters(q="ann"))
    (entry,) = AuditEntry.objects.filter(tenant=acme, event="app_user.export")
    assert entry.actor == support and entry.additional_data["filter"] == {"q": "ann"}
    assert len(list(lines)) == 2  # header and Ann
    viewer = staff_factory("v@console.test", tenants={acme: "viewer"})
    with pytest.raises(Refused) as info:
        app_user_export(actor=viewer, tenant=acme, filters=UserFilters())
    assert info.value.code == "role"
    assert AuditEntry.objects.filter(tenant=acme, event="app_user.export").count() == 1
    assert AuditEntry.objects.get(event="app_user.refused").additional_data["action"] == "export_users"


def test_export_streams_the_current_filter_formula_safe(acme, staff):
    make_user(acme, "evil@example.test", name='=HYPERLINK("http://x","click")')
    make_user(acme, "plain@example.test", name="Plain")
    make_user(acme, "other@else.test", name="Other")
    response = staff("support").get("/t/acme/users/export.csv?q=example.test&sort=email")
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["email"] for r in rows] == ["evil@example.test", "plain@example.test"]
    assert rows[0]["name"] == '\'=HYPERLINK("http://x","click")' and rows[0]["status"] == "active"
    assert AuditEntry.objects.filter(tenant=acme, event="app_user.export").exists()
    assert staff("viewer").get("/t/acme/users/export.csv").status_code == 403


def test_export_reads_in_keyset_chunks_past_one_chunk(acme, staff):
    make_users(acme, 2_345)
    response = staff("admin").get("/t/acme/users/export.csv")
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert len(lines) == 2_346 and len(set(lines)) == 2_346


# --- CSV import ----------------------------------------------------------------------------------

CSV = (
    "email,name,role\n"
    "ann@example.test,Ann,user\n"
    "BOB@example.test,Bob,\n"
    "not-an-email,X,user\n"
    "eve@example.test,=cmd|' /C calc'!A0,user\n"
    "root@example.test,Root,admin\n"
    "ann@example.test,Ann again,user\n"
)


def _upload(client, content: str = CSV, name: str = "people.csv"):
    return client.post("/t/acme/users/import/", {"file": SimpleUploadedFile(name, content.encode(), "text/csv")})


def test_import_previews_then_invites_and_twice_invites_nobody_twice(acme, staff):
    support = staff("support")
    preview = _upload(support)
    assert preview.status_code == 302 and "/t/acme/jobs/" in preview["Location"]
    page = support.get(preview["Location"]).content.decode()
    assert "Invite from CSV 2 users?" in page and "4 will be skipped" in page
    assert "Enter a valid email address." in page and "formula" in page and "protected" in page
    assert "Appears earlier in the file." in page
    assert not AppUser.objects.using(tenant_db.using(acme)).exists()  # a preview changes nothing
    result = support.get(_start(support, preview["Location"])).content.decode()
    assert 'data-processed>2<' in result and 'data-errors>3<' in result
    assert set(AppUser.objects.using(tenant_db.using(acme)).values_list("email", flat=True)) == {"ann@example.test", "bob@example.test"}
    assert OutboxMessage.objects.filter(kind="invite").count() == 2
    # The same file again: everybody is skipped; the same start again: refused.
    again = _upload(support)
    assert "Already a user of this tenant." in support.get(again["Location"]).content.decode()
    assert support.post(preview["Location"] + "start/", {"when": "now"}, follow=True).status_code == 200
    assert AppUser.objects.using(tenant_db.using(acme)).count() == 2
    assert OutboxMessage.objects.filter(kind="invite").count() == 2


@pytest.mark.parametrize("content, message", [
    ("name,role\nAnn,user\n", "at least “email”"),
    ("", "empty"),
    ("email\n", "no one to invite"),
])
def test_import_refuses_unreadable_files(acme, staff, content, message):
    response = _upload(staff("support"), content)
    assert response.status_code == 200 and message in response.content.decode()


def test_import_refuses_binary(acme, staff):
    support = staff("support")
    response = support.post("/t/acme/users/import/", {"file": SimpleUploadedFile("x.csv", b"\xff\xfe\x00\x00bin", "text/csv")})
    assert "not UTF-8" in response.content.decode() or "NUL" in response.content.decode()
    assert not AppUser.objects.using(tenant_db.using(acme)).exists()
    assert staff("viewer").get("/t/acme/users/import/").status_code == 403


# --- Invitations ---------------------------------------------------------------------------------


def test_invitations_page_lists_pending_invitations_with_resend_and_revoke(acme, make_tenant, staff):
    support = staff("support")
    support.post("/t/acme/users/invite/", {"email": "inv@example.test", "role": "user"})
    make_user(acme, "active@example.test")
    invited = AppUser.objects.using(tenant_db.using(acme)).get(email="inv@example.test")
    page = staff("viewer").get("/t/acme/invitations/").content.decode()
    assert "inv@example.test" in page and "active@example.test" not in page and re.search(r"expires <time[^>]*>in ", page)
    assert "Resend" not in page  # a viewer only reads
    assert support.post(f"/t/acme/invitations/{invited.pk}/resend/").status_code == 302
    assert OutboxMessage.objects.filter(kind="invite", to="inv@example.test").count() == 2
    assert staff("viewer").post(f"/t/acme/invitations/{invited.pk}/revoke/").status_code == 403
    globex = make_tenant("globex")
    foreign = make_user(globex, "g@example.test", email_confirmed_at=None, invited_at=invited.invited_at)
    assert support.post(f"/t/acme/invitations/{foreign.pk}/revoke/").status_code == 404
    assert reload(globex, foreign) is not None
    assert support.post(f"/t/acme/invitations/{invited.pk}/revoke/").status_code == 302
    assert reload(acme, invited) is None
    assert AuditEntry.objects.filter(event="app_user.invitation_revoke").count() == 1


@pytest.mark.parametrize("method, path", [
    ("get", "/t/acme/users/"), ("get", "/t/acme/users/new/"), ("post", "/t/acme/users/new/"),
    ("get", "/t/acme/users/invite/"), ("post", "/t/acme/users/invite/"), ("post", "/t/acme/users/batch/"),
    ("get", "/t/acme/users/export.csv"), ("get", "/t/acme/users/import/"), ("get", "/t/acme/invitations/"),
])
def test_pages_of_a_tenant_one_is_not_assigned_to_are_404(acme, make_tenant, staff_factory, method, path):
    globex = make_tenant("globex")
    outsider = login_verified(Client(), staff_factory("out@console.test", tenants={globex: "admin"}))
    users = make_users(acme, 2)
    data = {"email": "x@example.test", "role": "user", "mode": "invite", "action": "delete", "scope": "all",
            "confirm": "1"}
    response = getattr(outsider, method)(path, data if method == "post" else None)
    assert response.status_code == 404
    assert AppUser.objects.using(tenant_db.using(acme)).count() == 2
    assert reload(acme, users[0]).deleted_at is None
