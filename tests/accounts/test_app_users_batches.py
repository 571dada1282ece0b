"""Batch actions: per-user outcomes (processed / skipped / errors), bulk writes, bulk audit,
the cap, selection by filter, and the CSV import's idempotent bulk invitation."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.app_users import batches
from accounts.app_users.batches import InviteRow, Selection
from accounts.app_users.selectors import UserFilters
from accounts.models import BANNED_FOREVER, ActionToken, AppSession, AppUser
from audit.models import AuditEntry
from core.errors import Invalid, Refused
from core.policy import policy
from outbox.models import OutboxMessage
from tenants import db as tenant_db
from tests.accounts.app_user_data import make_user, make_users
from tests.expect import raises

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_batches(settings):
    settings.SECURITY_POLICY = {"batch_max_users": 5}
    policy.cache_clear()
    yield
    policy.cache_clear()


def _sessions_for(tenant, users):
    AppSession.objects.using(tenant_db.using(tenant)).bulk_create(
        [AppSession(user_id=u.pk, token_hash=f"{i:064x}", expires_at=timezone.now() + timedelta(days=1))
         for i, u in enumerate(users)],
        batch_size=500,
    )


def _mixed_thousand(tenant, *, self_email: str):
    """1,000 users: 994 ordinary, 3 protected (role admin), 1 with the actor's email, 2 deleted."""
    users = make_users(tenant, 994)
    alias = tenant_db.using(tenant)
    protected = [make_user(tenant, f"root{i}@example.test", role="admin") for i in range(3)]
    me = make_user(tenant, self_email)
    deleted = [make_user(tenant, f"gone{i}@example.test", deleted_at=timezone.now()) for i in range(2)]
    everyone = users + protected + [me] + deleted
    assert AppUser.objects.using(alias).count() == 1000
    return users, protected, me, deleted, everyone


def test_a_batch_of_1000_reports_refusals_and_skips_and_applies_the_rest(acme, support):
    users, protected, me, deleted, everyone = _mixed_thousand(acme, self_email="helper@console.test")
    _sessions_for(acme, everyone[:-2])
    with CaptureQueriesContext(connections[tenant_db.using(acme)]) as data, \
            CaptureQueriesContext(connections["default"]) as control:
        result = batches.app_users_batch(
            actor=support, tenant=acme, action="sign_out",
            selection=Selection(ids=tuple(str(u.pk) for u in everyone)),
        )
    assert (result.processed, result.skipped, result.error_count) == (994, 2, 4)
    assert not result.success
    errors = {e.email: e.error for e in result.errors}
    assert set(errors) == {"root0@example.test", "root1@example.test", "root2@example.test", "helper@console.test"}
    assert "protected" in errors["root0@example.test"] and "own email" in errors["helper@console.test"]
    assert {e.email for e in result.skipped_items} == {"gone0@example.test", "gone1@example.test"}
    alias = tenant_db.using(acme)
    live = AppSession.objects.using(alias).filter(revoked_at__isnull=True)
    assert set(live.values_list("user__email", flat=True)) == {u.email for u in protected + [me]}
    # Bulk statements, never a query per user. (SQLite caps the parameters of one statement,
    # so the audit's bulk insert of ~1,000 rows is split in ~20 chunks and their events' in ~8;
    # PostgreSQL needs one COPY and two inserts.)
    assert len(data) < 20 and len(control) < 40, (len(data), len(control))
    assert AuditEntry.objects.filter(tenant=acme, event="app_user.sign_out").count() == 994
    summary = AuditEntry.objects.get(tenant=acme, event="app_user.batch_sign_out")
    assert summary.additional_data["processed"] == 994 and summary.additional_data["errors"] == 4


def test_admin_batch_ban_of_1000_refuses_self_skips_deleted_and_bans_protected_too(acme, admin):
    users, protected, me, deleted, everyone = _mixed_thousand(acme, self_email="boss@console.test")
    _sessions_for(acme, everyone[:-2])
    until = timezone.now() + timedelta(hours=24)
    result = batches.app_users_batch(
        actor=admin, tenant=acme, action="ban", until=until, reason="raid",
        selection=Selection(ids=tuple(str(u.pk) for u in everyone)),
    )
    assert (result.processed, result.skipped, result.error_count) == (997, 2, 1)
    alias = tenant_db.using(acme)
    banned = AppUser.objects.using(alias).filter(banned_until=until, ban_reason="raid")
    assert banned.count() == 997 and not banned.filter(pk=me.pk).exists()
    assert AppSession.objects.using(alias).filter(revoked_at__isnull=True).count() == 1  # mine
    entry = AuditEntry.objects.filter(tenant=acme, event="app_user.ban").first()
    assert "banned_until" in entry.changes


def test_support_cannot_run_an_admin_batch(acme, support):
    users = make_users(acme, 3)
    with raises(Refused, "role"):
        batches.app_users_batch(actor=support, tenant=acme, action="ban", until=BANNED_FOREVER,
                                selection=Selection(ids=tuple(str(u.pk) for u in users)))
    assert not AppUser.objects.using(tenant_db.using(acme)).filter(banned_until__isnull=False).exists()
    refusal = AuditEntry.objects.get(event="app_user.refused")
    assert refusal.additional_data["action"] == "ban_user" and refusal.additional_data["error_code"] == "role"


def test_unknown_and_foreign_ids_are_errors_not_failures(acme, make_tenant, admin):
    globex = make_tenant("globex")
    other = make_user(globex, "gina@example.test")
    mine = make_user(acme, "ann@example.test")
    result = batches.app_users_batch(actor=admin, tenant=acme, action="ban", until=BANNED_FOREVER,
                                     selection=Selection(ids=(str(mine.pk), str(other.pk), "junk")))
    assert result.processed == 1 and result.error_count == 2
    assert AppUser.objects.using(tenant_db.using(globex)).get(pk=other.pk).banned_until is None


def test_all_matching_a_filter_is_sent_as_the_filter(acme, admin):
    make_users(acme, 30, prefix="spam", domain="bad.test")
    make_users(acme, 20, prefix="good")
    result = batches.app_users_batch(actor=admin, tenant=acme, action="ban", until=BANNED_FOREVER,
                                     selection=Selection(filters=UserFilters(q="bad.test")))
    assert result.processed == 30
    alias = tenant_db.using(acme)
    assert set(AppUser.objects.using(alias).filter(banned_until=BANNED_FOREVER).values_list("email", flat=True)) \
        == {f"spam{i:05d}@bad.test" for i in range(30)}
    assert batches.selection_count(tenant=acme, selection=Selection(filters=UserFilters(status="banned"))) == 30


def test_more_than_the_cap_is_refused_clearly_and_changes_nothing(acme, admin, small_batches):
    users = make_users(acme, 6)
    with raises(Invalid, "batch_too_large", match="at most 5"):
        batches.app_users_batch(actor=admin, tenant=acme, action="delete",
                                selection=Selection(ids=tuple(str(u.pk) for u in users)))
    with raises(Invalid, "batch_too_large", match="more than 5"):
        batches.app_users_batch(actor=admin, tenant=acme, action="delete",
                                selection=Selection(filters=UserFilters()))
    assert not AppUser.objects.using(tenant_db.using(acme)).filter(deleted_at__isnull=False).exists()


def test_unban_batch_skips_users_who_are_not_banned(acme, admin):
    users = make_users(acme, 4)
    AppUser.objects.using(tenant_db.using(acme)).filter(pk__in=[u.pk for u in users[:3]]).update(banned_until=BANNED_FOREVER)
    result = batches.app_users_batch(actor=admin, tenant=acme, action="unban",
                                     selection=Selection(ids=tuple(str(u.pk) for u in users)))
    assert (result.processed, result.skipped) == (3, 1)
    assert not AppUser.objects.using(tenant_db.using(acme)).filter(banned_until__isnull=False).exists()


def test_recovery_batch_mails_each_user_once_and_can_sign_out(acme, support):
    users = make_users(acme, 40)
    banned = make_user(acme, "banned@example.test", banned_until=BANNED_FOREVER)
    _sessions_for(acme, users)
    result = batches.app_users_batch(
        actor=support, tenant=acme, action="send_recovery", sign_out=True,
        selection=Selection(ids=tuple(str(u.pk) for u in [*users, banned])),
    )
    assert (result.processed, result.skipped) == (40, 1)
    assert OutboxMessage.objects.filter(kind="recovery").count() == 40
    body = OutboxMessage.objects.filter(kind="recovery").first().body
    assert "/p/acme/recover/" in body
    assert ActionToken.objects.using(tenant_db.using(acme)).filter(purpose="recovery").count() == 40
    assert not AppSession.objects.using(tenant_db.using(acme)).filter(revoked_at__isnull=True).exists()


def test_resend_invitation_batch_only_touches_pending_invitations(acme, support):
    invited = make_users(acme, 5, prefix="inv", email_confirmed_at=None, invited_at=timezone.now())
    active = make_users(acme, 2, prefix="act")
    result = batches.app_users_batch(
        actor=support, tenant=acme, action="resend_invitation",
        selection=Selection(ids=tuple(str(u.pk) for u in invited + active)),
    )
    assert (result.processed, result.skipped) == (5, 2)
    assert set(OutboxMessage.objects.filter(kind="invite").values_list("to", flat=True)) == {u.email for u in invited}


def test_delete_batch_soft_deletes_with_unique_obfuscated_addresses(acme, admin):
    users = make_users(acme, 25)
    result = batches.app_users_batch(actor=admin, tenant=acme, action="delete",
                                     selection=Selection(ids=tuple(str(u.pk) for u in users)))
    assert result.processed == 25
    rows = AppUser.objects.using(tenant_db.using(acme)).all()
    assert {r.email for r in rows} == {f"deleted-{u.pk.hex}@deleted.invalid" for u in users}
    assert all(r.status == "deleted" and r.name == "" for r in rows)
    again = batches.app_users_batch(actor=admin, tenant=acme, action="delete",
                                    selection=Selection(ids=tuple(str(u.pk) for u in users)))
    assert (again.processed, again.skipped) == (0, 25)


def test_a_batch_of_10000_is_done_in_seconds(acme, admin, capsys):
    users = make_users(acme, 10_000)
    _sessions_for(acme, users)
    started = time.perf_counter()
    result = batches.app_users_batch(actor=admin, tenant=acme, action="ban", until=BANNED_FOREVER,
                                     selection=Selection(filters=UserFilters()))
    elapsed = time.perf_counter() - started
    assert result.processed == 10_000
    assert not AppSession.objects.using(tenant_db.using(acme)).filter(revoked_at__isnull=True).exists()
    with capsys.disabled():
        print(f"\n[batch] ban 10,000 users (sessions, audit): {elapsed:.2f}s on {connections['default'].vendor}")
    assert elapsed < 15


def test_a_bulk_ban_of_thousands_keeps_the_chain_the_events_and_the_sessions_exact(acme, admin):
    """2,500 users (past SQLite's 900-id statements; one statement per step on PostgreSQL): one
    audit entry and one event per user, each diff from that user's own prior state, a chain that
    verifies, every session and pending link ended."""
    from audit import chain
    from events.models import Event
    from tests.accounts.app_user_data import make_session

    alias = tenant_db.using(acme)
    now = timezone.now()
    users = make_users(acme, 2_497)
    expired = make_users(acme, 3, prefix="expired", banned_until=now - timedelta(days=1), ban_reason="old")
    everyone = users + expired
    _sessions_for(acme, everyone)
    ActionToken.objects.using(alias).bulk_create([
        ActionToken(user_id=u.pk, purpose=ActionToken.Purpose.RECOVERY, token_hash=f"{i:064x}",
                    expires_at=now + timedelta(hours=1)) for i, u in enumerate(everyone[:1000])
    ])
    make_session(acme, make_user(acme, "bystander@example.test"))
    until = now + timedelta(days=7)
    with CaptureQueriesContext(connections[alias]) as tenant_sql:
        result = batches.app_users_batch(actor=admin, tenant=acme, action="ban", until=until, reason="raid",
                                         selection=Selection(ids=tuple(str(u.pk) for u in everyone)))
    assert (result.processed, result.skipped, result.error_count) == (2_500, 0, 0)
    updates = [q["sql"] for q in tenant_sql.captured_queries if q["sql"].startswith('UPDATE "accounts_appuser"')]
    assert len(updates) == (1 if connections[alias].vendor == "postgresql" else 3)

    assert AppUser.objects.using(alias).filter(banned_until=until, ban_reason="raid").count() == 2_500
    assert AppSession.objects.using(alias).filter(revoked_at__isnull=True).count() == 1  # the bystander's
    assert not ActionToken.objects.using(alias).filter(revoked_at__isnull=True).exists()

    entries = AuditEntry.objects.filter(tenant=acme, event="app_user.ban")
    assert entries.count() == 2_500
    assert set(entries.values_list("object_pk", flat=True)) == {str(u.pk) for u in everyone}
    fresh = entries.get(object_pk=str(users[0].pk)).changes
    assert fresh == {"ban_reason": ["", "raid"], "banned_until": [None, until.isoformat()]}
    old = entries.get(object_pk=str(expired[0].pk)).changes
    assert old == {"ban_reason": ["old", "raid"],
                   "banned_until": [expired[0].banned_until.isoformat(), until.isoformat()]}

    events = Event.objects.filter(tenant_id=acme.pk, type="user.banned")
    assert events.count() == 2_500
    assert {e.payload["data"]["user"]["id"] for e in events} == {str(u.pk) for u in everyone}
    assert {e.payload["data"]["banned_until"] for e in events} == {until.isoformat()}
    assert Event.objects.filter(tenant_id=acme.pk, type__in=("batch.started", "batch.finished")).count() == 2

    verified = chain.verify(chain.chain_key(acme.pk))
    assert verified.ok, verified.broken
    assert verified.checked == AuditEntry.objects.filter(tenant=acme).count()


# --- Import ------------------------------------------------------------------------------------


def test_invite_many_is_idempotent_and_reports_each_row(acme, support):
    make_user(acme, "exists@example.test")
    rows = [
        InviteRow(1, "new1@example.test", "New One", ""),
        InviteRow(2, "NEW2@example.test", "", "user"),
        InviteRow(3, "new1@example.test", "", ""),          # duplicate in the file
        InviteRow(4, "exists@example.test", "", ""),        # already a user
        InviteRow(5, "not-an-email", "", ""),
        InviteRow(6, "boss@example.test", "", "admin"),     # protected role, support
        InviteRow(7, "x@example.test", "=HYPERLINK(1)", ""),  # formula
        InviteRow(8, "y@example.test", "", "wizard"),
    ]
    result = batches.app_users_invite_many(actor=support, tenant=acme, rows=rows)
    assert (result.processed, result.skipped, result.error_count) == (2, 2, 4)
    assert OutboxMessage.objects.filter(kind="invite").count() == 2
    again = batches.app_users_invite_many(
        actor=support, tenant=acme, rows=[InviteRow(1, "new1@example.test"), InviteRow(2, "new2@example.test")])
    assert (again.processed, again.skipped) == (0, 2)
    assert AppUser.objects.using(tenant_db.using(acme)).count() == 3
    assert OutboxMessage.objects.filter(kind="invite").count() == 2
    assert AuditEntry.objects.filter(tenant=acme, event="app_user.invite").count() == 2


@pytest.mark.parametrize("name, shown", [
    ("=1+1", "“=”"), ("  @SUM(A1)", "“@”"), ("-2", "“-”"), ("\tx", "a tab"), ("\rx", "a carriage return"),
])
def test_imported_cells_a_spreadsheet_would_run_are_refused(acme, support, name, shown):
    """The one CSV rule (``core.csv_safety``): TAB and CR count too, leading spaces do not hide it."""
    (row,) = batches.invite_rows_check(actor=support, tenant=acme, rows=[InviteRow(1, "ann@example.test", name)])
    assert row.error == f"The name starts with {shown}, which spreadsheets run as a formula."
