"""One source of events: every change that writes an audit entry writes its event in the same
transaction, with the right payload and never a secret; batches write theirs in bulk."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.app_users import services as users
from accounts.app_users.batches import Selection, app_users_batch
from audit.models import AuditEntry
from events.models import Event
from outbox.models import OutboxMessage
from tests.accounts.app_user_data import make_factor, make_session, make_user, make_users
from tests.portal.conftest import APP_PASSWORD, portal_sign_in
from tests.portal.test_account import code_for

pytestmark = pytest.mark.django_db


def _events(*types: str) -> list[Event]:
    qs = Event.objects.order_by("id")
    return list(qs.filter(type__in=types) if types else qs)


def _one(kind: str) -> dict:
    found = _events(kind)
    assert len(found) == 1, [e.type for e in _events()]
    return found[0].payload


def test_every_console_action_kind_produces_its_event(acme, tadmin):
    actor = {"type": "staff", "id": str(tadmin.pk), "email": tadmin.email}
    created = users.app_user_create(actor=tadmin, tenant=acme, email="new@example.test", name="New",
                                    password="a-long-enough-password-1")
    p = _one("user.created")
    assert p["type"] == "user.created" and p["data"]["actor"] == actor and p["data"]["tenant"] == "acme"
    assert p["data"]["user"]["email"] == "new@example.test" and p["data"]["user"]["name"] == "New"

    invited = users.app_user_invite(actor=tadmin, tenant=acme, email="inv@example.test")
    assert _one("user.invited")["data"]["user"]["id"] == str(invited.pk)
    users.app_user_invitation_resend(actor=tadmin, tenant=acme, user_id=invited.pk)
    assert _one("link.sent")["data"]["purpose"] == "invite"

    users.app_user_update(actor=tadmin, tenant=acme, user_id=created.pk, name="Renamed", role="")
    p = _one("user.updated")["data"]
    assert p["fields"] == ["name"] and p["changes"] == {"name": {"old": "New", "new": "Renamed"}}

    users.app_user_ban(actor=tadmin, tenant=acme, user_id=created.pk,
                       until=timezone.now() + dt.timedelta(days=1), reason="spam")
    p = _one("user.banned")["data"]
    assert p["ban_reason"] == "spam" and p["banned_until"] and p["indefinitely"] is False
    users.app_user_unban(actor=tadmin, tenant=acme, user_id=created.pk)
    assert _one("user.unbanned")["data"]["user"]["id"] == str(created.pk)

    session = make_session(acme, created)
    users.app_user_sign_out(actor=tadmin, tenant=acme, user_id=created.pk, session_id=session.pk)
    p = _one("session.revoked")["data"]
    assert p["sessions_ended"] == 1 and p["session"] == str(session.pk)

    users.app_user_send_recovery(actor=tadmin, tenant=acme, user_id=created.pk)
    users.app_user_send_magic_link(actor=tadmin, tenant=acme, user_id=created.pk)
    assert [e.payload["data"]["purpose"] for e in _events("link.sent")] == ["invite", "recovery", "magic_link"]

    factor = make_factor(acme, created)
    users.app_user_factor_remove(actor=tadmin, tenant=acme, user_id=created.pk, factor_id=factor.pk)
    assert _one("factor.removed")["data"]["factors"] == [{"id": str(factor.pk), "kind": "totp", "name": ""}]

    users.app_user_delete(actor=tadmin, tenant=acme, user_id=created.pk)
    users.app_user_delete(actor=tadmin, tenant=acme, user_id=invited.pk, hard=True)
    assert [e.payload["data"]["hard"] for e in _events("user.deleted")] == [False, True]

    # Each event sits beside its audit entry; none holds a secret (a link's token, a password).
    for event in _events():
        if event.audit_entry_id:
            assert AuditEntry.objects.get(pk=event.audit_entry_id).tenant_id == acme.pk
    text = json.dumps([e.payload for e in _events()])
    for message in OutboxMessage.objects.all():
        token = message.body.split("/")[-2] if "/p/acme/" in message.body else None
        for line in message.body.splitlines():
            if "/p/acme/" in line:
                token = line.rstrip("/").rsplit("/", 1)[-1]
                assert token not in text
        assert token
    assert "a-long-enough-password-1" not in text and "password\": \"" not in text


def test_an_event_is_written_in_the_same_transaction_as_its_audit_entry(acme, tadmin):
    from django.db import transaction

    user = make_user(acme, "ann@example.test")
    with pytest.raises(RuntimeError), transaction.atomic():
        users.app_user_ban(actor=tadmin, tenant=acme, user_id=user.pk, until=timezone.now() + dt.timedelta(hours=1))
        assert Event.objects.filter(type="user.banned").count() == 1
        raise RuntimeError("the change rolls back")
    assert not Event.objects.filter(type="user.banned").exists()


def test_portal_sign_in_sign_out_and_factor_enrolment_produce_their_events(client, acme):
    from django.contrib.auth.hashers import make_password

    from accounts.models import AppFactor
    from tenants import db as tenant_db

    ann = make_user(acme, "ann@acme.test", password=make_password(APP_PASSWORD))
    assert portal_sign_in(client, acme).status_code == 302
    p = _one("user.signed_in")["data"]
    assert p["actor"] == {"type": "user", "id": str(ann.pk)} and p["user"]["id"] == str(ann.pk)
    client.post("/p/acme/account/mfa/")
    factor = AppFactor.objects.using(tenant_db.using(acme)).get()
    assert client.post(f"/p/acme/account/mfa/{factor.pk}/confirm/", {"code": code_for(factor)}).status_code == 200
    assert _one("factor.enrolled")["data"]["user"]["id"] == str(ann.pk)
    assert "key" not in json.dumps(_one("factor.enrolled"))
    client.post("/p/acme/logout/")
    assert _one("user.signed_out")["data"]["user"]["id"] == str(ann.pk)


def test_impersonation_start_and_end_produce_their_events(as_staff, tadmin, acme):
    ann = make_user(acme, "ann@acme.test")
    client = as_staff(tadmin)
    assert client.post(f"/t/acme/impersonations/start/{ann.pk}/", {"reason": "Ticket #42"}).status_code in (200, 302)
    started = _one("impersonation.started")["data"]
    assert started["reason"] == "Ticket #42" and started["user"]["id"] == str(ann.pk)
    from portal.models import Impersonation

    imp = Impersonation.objects.get()
    client.post(f"/t/acme/impersonations/{imp.pk}/end/")
    assert _one("impersonation.ended")["data"]["user"]["id"] == str(ann.pk)


def test_tenant_lifecycle_events_are_instance_scope(make_tenant, staff_factory):
    from tenants.services import tenant_suspend

    root = staff_factory(superuser=True)
    tenant = make_tenant("initech")
    tenant_suspend(actor=root, tenant=tenant)
    types = [e.type for e in _events() if e.type.startswith("tenant.")]
    assert types[:2] == ["tenant.created", "tenant.provisioned"] and types[-1] == "tenant.suspended"
    assert _one("tenant.suspended")["data"]["tenant"] == "initech"


def test_a_batch_of_5000_writes_5000_events_in_bulk(acme, tadmin, settings):
    make_users(acme, 5000)
    with CaptureQueriesContext(connection) as queries:
        result = app_users_batch(actor=tadmin, tenant=acme, action="ban",
                                 selection=Selection(ids=tuple(str(u) for u in _all_ids(acme))),
                                 until=timezone.now() + dt.timedelta(days=1), reason="bulk")
    assert result.processed == 5000
    assert Event.objects.filter(type="user.banned").count() == 5000
    assert len({e for e in Event.objects.filter(type="user.banned").values_list("subject", flat=True)}) == 5000
    inserts = [q["sql"] for q in queries.captured_queries if q["sql"].startswith('INSERT INTO "events_event"')]
    if connection.vendor == "postgresql":  # COPY, with the ids taken from the sequence in one query
        assert not inserts and sum("nextval(pg_get_serial_sequence" in q["sql"] for q in queries.captured_queries) == 1
    else:
        assert 1 <= len(inserts) <= 50  # bulk: hundreds of rows a statement (SQLite caps its variables)
    kinds = [e.type for e in Event.objects.order_by("id").exclude(type__startswith="tenant.")]
    assert kinds[0] == "batch.started" and kinds[-1] == "batch.finished"
    finished = _one("batch.finished")["data"]
    assert finished["processed"] == 5000 and finished["action"] == "ban"


def _all_ids(tenant):
    from accounts.models import AppUser
    from tenants import db as tenant_db

    return AppUser.objects.using(tenant_db.using(tenant)).values_list("pk", flat=True)


def test_events_off_write_nothing(acme, tadmin, settings):
    settings.EVENTS_ENABLED = False
    user = make_user(acme, "ann@example.test")
    users.app_user_unban  # noqa: B018
    users.app_user_ban(actor=tadmin, tenant=acme, user_id=user.pk, until=timezone.now() + dt.timedelta(hours=1))
    assert not Event.objects.filter(type="user.banned").exists()


def test_the_feed_pages_by_cursor_and_stays_in_its_tenant(acme, globex, tadmin, staff_factory):
    from events.selectors import event_feed

    ann, bob = make_user(acme, "ann@example.test"), make_user(globex, "bob@example.test")
    for _ in range(3):
        users.app_user_ban(actor=tadmin, tenant=acme, user_id=ann.pk, until=timezone.now() + dt.timedelta(hours=1))
        users.app_user_unban(actor=tadmin, tenant=acme, user_id=ann.pk)
    other = staff_factory(tenants={globex: "admin"})
    users.app_user_ban(actor=other, tenant=globex, user_id=bob.pk, until=timezone.now() + dt.timedelta(hours=1))
    page, cursor = event_feed(tenant=acme, limit=4)
    assert [e.type for e in page] == ["user.banned", "user.unbanned"] * 2
    rest, last = event_feed(tenant=acme, after=cursor, limit=100)
    assert [e.type for e in rest] == ["user.banned", "user.unbanned"]
    assert event_feed(tenant=acme, after=last) == ([], None)
    assert event_feed(tenant=acme, after=page[1].pk, limit=1)[0] == [page[2]]
    with pytest.raises(ValueError):
        event_feed(tenant=acme, after=Event.objects.get(tenant=globex, type="user.banned").uid)


def test_an_email_change_is_requested_then_made_each_with_its_event(client, acme, tadmin):
    import re

    ann = make_user(acme, "ann@example.test")
    users.app_user_update(actor=tadmin, tenant=acme, user_id=ann.pk, email="ann.new@example.test")
    p = _one("user.email_change_requested")["data"]
    assert p["user"] == {"id": str(ann.pk), "email": "ann@example.test"} and p["new_email"] == "ann.new@example.test"
    assert "action_token" not in p and not _events("user.updated")
    body = OutboxMessage.objects.get(to="ann.new@example.test", kind="email_change").body
    path = re.search(r"https?://\S+/email-change/\S+/", body).group(0).split("8000", 1)[-1]
    assert path.rstrip("/").rsplit("/", 1)[-1] not in json.dumps(_one("user.email_change_requested"))
    assert client.post(path).status_code == 200
    changed = _one("user.updated")["data"]
    assert changed["changes"]["email"] == {"old": "ann@example.test", "new": "ann.new@example.test"}
    assert changed["actor"] == {"type": "user", "id": str(ann.pk)}
