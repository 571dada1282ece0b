"""The table of set bans (accounts.ban_table): triggers keep it equal to the users' banned_until
whatever writes it, it survives SQLite's table rebuilds, and on PostgreSQL a ban no longer
rewrites the user table's indexes (the update is HOT)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connections, transaction
from django.utils import timezone

from accounts import ban_table
from accounts.app_users import batches
from accounts.app_users import services as app_services
from accounts.app_users.selectors import UserFilters, app_user_filter
from accounts.models import AppUser, AppUserBan
from tenants import db as tenant_db
from tests.accounts.app_user_data import make_user, make_users

pytestmark = pytest.mark.django_db(transaction=True)


def _in_step(tenant) -> None:
    alias = tenant_db.using(tenant)
    expected = dict(AppUser.objects.using(alias).filter(banned_until__isnull=False)
                    .values_list("id", "banned_until"))
    assert dict(AppUserBan.objects.using(alias).values_list("user_id", "banned_until")) == expected


def test_every_writer_keeps_the_ban_table_in_step(make_tenant, staff_factory):
    tenant = make_tenant("acme")
    alias = tenant_db.using(tenant)
    admin = staff_factory("root@console.test", superuser=True)
    users = make_users(tenant, 30)
    until = timezone.now() + timedelta(days=2)
    assert ban_table.installed(connections[alias]) == set(ban_table.TRIGGERS)

    app_services.app_user_ban(actor=admin, tenant=tenant, user_id=users[0].pk, until=until, reason="spam")
    _in_step(tenant)
    assert AppUserBan.objects.using(alias).get(pk=users[0].pk).banned_until == until

    result = batches.app_users_batch(actor=admin, tenant=tenant, action="ban",
                                     selection=batches.Selection(ids=tuple(str(u.pk) for u in users[:20])),
                                     until=until + timedelta(hours=1), reason="batch")
    assert result.processed == 20
    _in_step(tenant)
    assert AppUserBan.objects.using(alias).count() == 20

    app_services.app_user_unban(actor=admin, tenant=tenant, user_id=users[0].pk)
    _in_step(tenant)
    # Raw writes too: a queryset update, a created row already banned, a hard delete.
    AppUser.objects.using(alias).filter(pk__in=[u.pk for u in users[20:25]]).update(banned_until=until)
    banned_at_birth = make_user(tenant, "born-banned@acme.test", banned_until=until)
    AppUser.objects.using(alias).filter(pk=users[5].pk).delete()
    AppUser.objects.using(alias).filter(pk=users[6].pk).update(banned_until=None)
    _in_step(tenant)
    assert AppUserBan.objects.using(alias).filter(pk=banned_at_birth.pk).exists()
    assert not AppUserBan.objects.using(alias).filter(pk=users[5].pk).exists()

    # The banned filter reads the table and still asks banned_until > now (an expired ban is
    # a row of the table, not a banned user).
    AppUser.objects.using(alias).filter(pk=users[7].pk).update(banned_until=timezone.now() - timedelta(minutes=1))
    _in_step(tenant)
    banned = set(app_user_filter(tenant=tenant, filters=UserFilters(status="banned")).values_list("pk", flat=True))
    expected = {u.pk for u in AppUser.objects.using(alias).filter(banned_until__gt=timezone.now(),
                                                                   deleted_at__isnull=True)}
    assert banned == expected and users[7].pk not in banned and len(banned) == 22


def test_unban_everyone_the_banned_filter_matches(make_tenant, staff_factory):
    """"All matching" with status=banned locks the users it reads through the side table (a join
    under FOR UPDATE on PostgreSQL) and empties it."""
    tenant = make_tenant("acme")
    alias = tenant_db.using(tenant)
    admin = staff_factory("root@console.test", superuser=True)
    users = make_users(tenant, 12)
    AppUser.objects.using(alias).filter(pk__in=[u.pk for u in users[:8]]).update(
        banned_until=timezone.now() + timedelta(days=1))
    assert batches.selection_count(tenant=tenant, selection=batches.Selection(
        filters=UserFilters(status="banned"))) == 8
    result = batches.app_users_batch(actor=admin, tenant=tenant, action="unban",
                                     selection=batches.Selection(filters=UserFilters(status="banned")))
    assert result.processed == 8
    assert not AppUserBan.objects.using(alias).exists()
    _in_step(tenant)


def test_a_rolled_back_ban_leaves_no_row(make_tenant):
    tenant = make_tenant("acme")
    alias = tenant_db.using(tenant)
    user = make_user(tenant, "a@acme.test")
    with pytest.raises(RuntimeError), transaction.atomic(using=alias):
        AppUser.objects.using(alias).filter(pk=user.pk).update(banned_until=timezone.now() + timedelta(days=1))
        raise RuntimeError
    assert not AppUserBan.objects.using(alias).exists()


def test_the_triggers_outlive_a_table_change(make_tenant):
    """SQLite drops a table's triggers when Django rebuilds it (ensure, run after every migrate of
    a tenant database, puts them back and catches up); PostgreSQL keeps them through ALTER TABLE."""
    tenant = make_tenant("acme")
    alias = tenant_db.using(tenant)
    connection = connections[alias]
    user = make_user(tenant, "a@acme.test")
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":  # what Django's _remake_table does to them
            for sql in ban_table.SQLITE_REMOVE:
                cursor.execute(sql)
        else:
            cursor.execute("ALTER TABLE accounts_appuser ADD COLUMN probe integer")
            cursor.execute("ALTER TABLE accounts_appuser DROP COLUMN probe")
    if connection.vendor == "sqlite":
        assert ban_table.installed(connection) == set()
        AppUser.objects.using(alias).filter(pk=user.pk).update(banned_until=timezone.now() + timedelta(days=1))
        assert not AppUserBan.objects.using(alias).exists()
        assert ban_table.ensure(connection) is True
    assert ban_table.installed(connection) == set(ban_table.TRIGGERS)
    AppUser.objects.using(alias).filter(pk=user.pk).update(banned_until=timezone.now() + timedelta(days=2))
    _in_step(tenant)
    assert AppUserBan.objects.using(alias).count() == 1
    assert ban_table.ensure(connection) is False


@pytest.mark.postgres
def test_a_ban_is_a_heap_only_update_on_postgresql(make_tenant, staff_factory):
    """No index of accounts_appuser names banned_until and its pages keep room (fillfactor 80),
    so a banned user's row is updated HOT: no entry in any of the table's indexes. Here one user
    in ten, so that every page has room for its new row versions (a page whose every row is
    banned at once fits about a fifth of them; the rest are ordinary updates)."""
    tenant = make_tenant("acme")
    alias = tenant_db.using(tenant)
    connection = connections[alias]
    admin = staff_factory("root@console.test", superuser=True)
    users = make_users(tenant, 2_000)[::10]
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'accounts_appuser'")
        assert cursor.fetchone()[0] == ["fillfactor=80"]
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'accounts_appuser'")
        assert not [d for (d,) in cursor.fetchall() if "banned_until" in d]
    with transaction.atomic(using=alias):
        result = batches.app_users_batch(actor=admin, tenant=tenant, action="ban",
                                         selection=batches.Selection(ids=tuple(str(u.pk) for u in users)),
                                         until=timezone.now() + timedelta(days=1), reason="spam")
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_get_xact_tuples_updated(c.oid), pg_stat_get_xact_tuples_hot_updated(c.oid) "
                           "FROM pg_class c WHERE relname = 'accounts_appuser'")
            updated, hot = cursor.fetchone()
    assert result.processed == 200
    assert updated >= 200 and hot == updated, (updated, hot)
    _in_step(tenant)
