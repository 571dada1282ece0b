"""The audit viewer: ``/audit/`` (instance) and ``/t/<slug>/audit/`` (tenant admins)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import AppUser
from audit import services as audit
from audit.models import AuditEntry
from audit.selectors import csv_safe
from tenants import db as tenant_db
from tenants.models import Tenant

pytestmark = pytest.mark.django_db

SECRETS = ("hunter2-Secret-Password", "tok_9f8e7d6c5b4a", "JBSWY3DPEHPK3PXP", "hash-abcdef0123")


@pytest.fixture
def world(make_tenant, staff_factory):
    acme, globex = make_tenant("acme"), make_tenant("globex")
    root = staff_factory("root@console.test", superuser=True)
    ada = staff_factory("ada@console.test", tenants={acme: "admin"})
    bob = staff_factory("bob@console.test", tenants={acme: "support", globex: "admin"})
    ann = AppUser.objects.using(tenant_db.using(acme)).create(email="ann@acme.test", name="Ann")
    ban = audit.record(
        event="app_user.ban", actor=ada, tenant=acme, target=ann,
        before={"banned_until": None, "password": SECRETS[0]},
        after={"banned_until": "2030-01-01T00:00:00+00:00", "password": SECRETS[0] + "x"},
        data={"reason": "spam", "token": SECRETS[1], "raw_token": SECRETS[1], "otp_secret": SECRETS[2],
              "token_hash": SECRETS[3], "new_password": SECRETS[0]},
    )
    imp = audit.record(
        event="app_user.update", actor=ada, tenant=acme, target=ann, impersonator=bob,
        before={"name": "Ann"}, after={"name": "Annie"},
    )
    other = audit.record(
        event="app_user.delete", actor=bob, tenant=globex, target_model=AppUser,
        target_pk="11111111-2222-3333-4444-555555555555", target_repr="gus@globex.test",
        action=audit.DELETE,
    )
    console = audit.record(event="staff.login", actor=root, tenant=None, target=root, action=audit.ACCESS)
    return {"acme": acme, "globex": globex, "root": root, "ada": ada, "bob": bob, "ann": ann,
            "ban": ban, "imp": imp, "other": other, "console": console}


def rows(html: str) -> set[int]:
    return {int(pk) for pk in re.findall(r'<tr id="entry-(\d+)"', html)}


def test_instance_viewer_shows_every_tenant_and_the_console(client, world, as_staff):
    as_staff(world["root"])
    html = client.get("/audit/").content.decode()
    ids = rows(html)
    for key in ("ban", "imp", "other", "console"):
        assert world[key].pk in ids, key
    # The diff of each entry: old and new values.
    assert "<del>Ann</del> → <ins>Annie</ins>" in html
    assert "<del>∅</del> → <ins>Jan 1, 2030, 00:00</ins>" in html
    assert "impersonated by bob@console.test" in html


def test_the_viewer_never_shows_a_password_or_token(client, world, as_staff):
    # An entry written by code that forgot to leave a secret out: the viewer still hides it.
    AuditEntry.objects.filter(pk=world["ban"].pk).update(
        changes={"password": ["old-" + SECRETS[0], SECRETS[0]], "banned_until": [None, "2030"]},
        additional_data={"reason": "spam", "api_key": SECRETS[1], "session": {"token": SECRETS[1]}},
    )
    as_staff(world["root"])
    pages = [
        client.get("/audit/").content.decode(),
        client.get("/t/acme/audit/").content.decode(),
        b"".join(client.get("/audit/export.csv").streaming_content).decode(),
        b"".join(client.get("/t/acme/audit/export.csv").streaming_content).decode(),
    ]
    for page in pages:
        for secret in SECRETS:
            assert secret not in page
    assert "[hidden]" in pages[0] and "spam" in pages[0]


def test_tenant_viewer_shows_only_that_tenant(client, world, as_staff):
    as_staff(world["ada"])
    response = client.get("/t/acme/audit/")
    assert response.status_code == 200
    ids = rows(response.content.decode())
    assert {world["ban"].pk, world["imp"].pk} <= ids
    assert ids == set(AuditEntry.objects.filter(tenant=world["acme"]).values_list("pk", flat=True))
    assert world["other"].pk not in ids and world["console"].pk not in ids
    # Asking for another tenant's entries through the query string changes nothing.
    assert rows(client.get("/t/acme/audit/?tenant=globex").content.decode()) == ids
    csv_text = b"".join(client.get("/t/acme/audit/export.csv").streaming_content).decode()
    assert "gus@globex.test" not in csv_text and "staff.login" not in csv_text


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"actor": "BOB@console.test"}, {"other"}),
        ({"actor": "ada@console.test"}, {"ban", "imp"}),
        ({"event": "app_user.ban"}, {"ban"}),
        ({"event": "staff."}, {"console"}),
        ({"action": "delete"}, {"other"}),
        ({"target": "gus@globex"}, {"other"}),
        ({"target": "11111111-2222-3333-4444-555555555555"}, {"other"}),
        ({"impersonated": "1"}, {"imp"}),
        ({"tenant": "globex"}, {"other"}),
        ({"tenant": "-"}, {"console"}),
    ],
)
def test_each_filter_finds_its_entry(client, world, as_staff, params, expected):
    as_staff(world["root"])
    response = client.get("/audit/", params)
    assert response.status_code == 200
    ids = rows(response.content.decode())
    assert {world[k].pk for k in expected} <= ids
    others = {"ban", "imp", "other", "console"} - expected
    assert not ({world[k].pk for k in others} & ids)


def test_date_range_filter(client, world, as_staff):
    old = timezone.now() - dt.timedelta(days=40)
    AuditEntry.objects.filter(pk=world["other"].pk).update(timestamp=old)
    as_staff(world["root"])
    day = old.date().isoformat()
    ids = rows(client.get("/audit/", {"date_from": day, "date_to": day}).content.decode())
    assert ids == {world["other"].pk}
    recent = rows(client.get("/audit/", {"date_from": timezone.now().date().isoformat()}).content.decode())
    assert world["other"].pk not in recent and world["ban"].pk in recent


def test_bad_filters_are_messages_not_errors(client, world, as_staff):
    as_staff(world["root"])
    response = client.get("/audit/", {"date_from": "yesterday", "action": "explode", "actor": "x" * 500,
                                      "after": "!!not-a-cursor!!"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Some filters were ignored" in html and "YYYY-MM-DD" in html


def test_keyset_pagination_walks_every_entry_once(client, world, as_staff):
    acme = world["acme"]
    now = timezone.now()
    AuditEntry.objects.bulk_create([
        AuditEntry(event="app_user.update", content_type_id=world["ban"].content_type_id, object_pk=str(i),
                   object_repr=f"user {i}", action=1, tenant=acme, timestamp=now - dt.timedelta(seconds=i % 7))
        for i in range(120)
    ])
    as_staff(world["ada"])
    seen, url, pages = [], "/t/acme/audit/", 0
    while url:
        with CaptureQueriesContext(connection) as queries:
            html = client.get(url).content.decode()
        assert not any("OFFSET" in q["sql"].upper() for q in queries.captured_queries)
        assert not any("COUNT(" in q["sql"].upper() and "audit_auditentry" in q["sql"] for q in queries.captured_queries)
        seen += re.findall(r'<tr id="entry-(\d+)"', html)
        match = re.search(r'id="audit-older" href="([^"]+)"', html)
        url = match.group(1).replace("&amp;", "&") if match else None
        pages += 1
    assert pages == 3
    expected = AuditEntry.objects.filter(tenant=acme).count()
    assert expected > 120
    assert len(seen) == len(set(seen)) == expected


def test_htmx_filter_returns_only_the_results(client, world, as_staff):
    as_staff(world["root"])
    response = client.get("/audit/", {"event": "app_user.ban"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="audit-results")
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="audit-results">') and "<html" not in html
    assert rows(html) == {world["ban"].pk}


def test_csv_export_is_streamed_filtered_and_formula_safe(client, world, as_staff):
    audit.record(event="app_user.update", actor=world["ada"], tenant=world["acme"], target=world["ann"],
                 target_repr="=HYPERLINK(\"http://evil\")", before={"name": "@SUM(A1)"}, after={"name": "+1"})
    as_staff(world["root"])
    response = client.get("/audit/export.csv", {"tenant": "acme"})
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    table = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert table[0][:4] == ["timestamp", "id", "tenant", "event"]
    assert {r[2] for r in table[1:]} == {"acme"}
    for row in table[1:]:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    assert any(cell == "'=HYPERLINK(\"http://evil\")" for row in table for cell in row)
    assert csv_safe("-2") == "'-2" and csv_safe("\tx") == "'\tx" and csv_safe("ok") == "ok"


def test_the_viewer_is_read_only(client, world, as_staff):
    as_staff(world["root"])
    before = list(AuditEntry.objects.order_by("pk").values_list("pk", "event", "changes"))
    assert client.post("/audit/", {"event": "x"}).status_code == 405
    assert client.post("/t/acme/audit/").status_code == 405
    assert client.post("/audit/export.csv").status_code == 405
    html = client.get("/audit/").content.decode()
    assert 'method="post"' not in html.split('id="audit-filters"')[1].split("</section>")[0]
    assert list(AuditEntry.objects.order_by("pk").values_list("pk", "event", "changes")) == before


@pytest.mark.parametrize("role", ["support", "viewer"])
def test_other_roles_cannot_read_the_tenant_trail(client, world, staff_factory, as_staff, role):
    as_staff(staff_factory(tenants={world["acme"]: role}))
    assert client.get("/t/acme/audit/").status_code == 403
    assert client.get("/t/acme/audit/export.csv").status_code == 403
    assert client.get("/audit/").status_code == 404


def test_other_tenant_is_404(client, world, as_staff):
    as_staff(world["ada"])  # admin of acme only
    assert client.get("/t/globex/audit/").status_code == 404
    assert client.get("/t/globex/audit/export.csv").status_code == 404
    assert client.get("/audit/").status_code == 404
    assert client.get("/audit/export.csv").status_code == 404


def test_deleted_tenant_trail_stays_readable_for_instance_admins(client, world, as_staff):
    Tenant.objects.filter(pk=world["globex"].pk).update(status=Tenant.Status.DELETED)
    as_staff(world["root"])
    assert world["other"].pk in rows(client.get("/audit/", {"tenant": "globex"}).content.decode())


def test_values_read_as_values_not_python_text():
    from audit.selectors import _short

    assert _short("{'tier': 2, 'plan': 'pro'}") == "tier: 2, plan: pro"
    assert _short('{"tags": ["a", "b"]}') == "tags: a, b"
    assert _short("[1, 2]") == "1, 2"
    assert _short("{not a dict") == "{not a dict"
    assert _short("2025-03-04T09:05:00+00:00") == "Mar 4, 2025, 09:05"
