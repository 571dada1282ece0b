"""The tamper-evident trail: hash chains per tenant and for the instance, ``audit verify``,
``audit prune``, and the chain's state in the viewer."""

from __future__ import annotations

import datetime as dt
import json
import threading
from io import StringIO
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, connections
from django.utils import timezone

from accounts.models import AppUser
from audit import archive, chain
from audit import services as audit
from audit.models import AuditEntry, ChainHead

pytestmark = pytest.mark.django_db


def _entries(tenant, n: int, event: str = "app_user.update") -> list[AuditEntry]:
    return [
        audit.record(event=event, actor=None, tenant=tenant, target_model=AppUser, target_pk=f"u{i}",
                     target_repr=f"u{i}@acme.test", data={"n": i, "ratio": 1.0})
        for i in range(n)
    ]


def _old_entry(tenant, *, days: int) -> AuditEntry:
    from django.contrib.contenttypes.models import ContentType

    entry = AuditEntry(event="app_user.update", content_type=ContentType.objects.get_for_model(AppUser),
                       object_pk="old", object_repr="old@acme.test", action=1, tenant=tenant,
                       timestamp=timezone.now() - dt.timedelta(days=days))
    entry.save()
    return entry


def _verify(*args: str) -> str:
    out = StringIO()
    call_command("audit", "verify", *args, stdout=out)
    return out.getvalue()


def _verify_fails(*args: str) -> str:
    out = StringIO()
    with pytest.raises(CommandError) as exc:
        call_command("audit", "verify", *args, stdout=out)
    assert exc.value.returncode == 1
    return out.getvalue()


def test_each_entry_links_to_the_one_before_in_its_own_chain(make_tenant):
    acme, globex = make_tenant("acme"), make_tenant("globex")
    a1, a2 = _entries(acme, 2)
    g1 = _entries(globex, 1)[0]
    i1 = audit.record(event="staff.login", actor=None, tenant=None, target_model=AppUser, target_pk="x")
    a3 = _entries(acme, 1)[0]
    stored = {e.pk: e for e in AuditEntry.objects.filter(pk__in=[a1.pk, a2.pk, a3.pk, g1.pk, i1.pk])}
    acme_head = ChainHead.objects.get(key=str(acme.pk))
    # Within acme, each entry points at the previous acme entry, not at globex's or the instance's.
    first = AuditEntry.objects.filter(tenant=acme).order_by("id").first()
    chain_rows = list(AuditEntry.objects.filter(tenant=acme, id__gte=first.pk).order_by("id"))
    for before, after in zip(chain_rows, chain_rows[1:], strict=False):
        assert after.prev_hash == before.hash
    assert stored[a3.pk].prev_hash == stored[a2.pk].hash
    assert stored[g1.pk].prev_hash != stored[a2.pk].hash
    assert acme_head.head_id == a3.pk and acme_head.head_hash == stored[a3.pk].hash
    assert ChainHead.objects.get(key=chain.INSTANCE).head_id == i1.pk
    # The hash is sha256(prev + "\n" + canonical JSON): anybody can recompute it from the row.
    row = AuditEntry.objects.filter(pk=a3.pk).values("prev_hash", *chain.CONTENT_COLUMNS).get()
    document = json.loads(chain.canonical(row))
    assert document["v"] == 1 and document["chain"] == str(acme.pk)
    assert document["additional_data"]["ratio"] == 1  # integral floats as integers (jsonb)
    assert chain.entry_hash(row["prev_hash"], row) == stored[a3.pk].hash
    assert "entries verified" in _verify()


def _documented_canonical(row) -> bytes:
    """The module docstring's rule, written the plain way: one json.dumps of the whole document."""
    doc = {"v": 1, "chain": chain.chain_key(row.get("tenant_id"))}
    for name in chain.CONTENT_COLUMNS:
        value = row.get(name)
        if value is None:
            pass
        elif name in ("actor_id", "impersonator_id", "tenant_id"):
            value = str(value)
        elif name in ("action", "content_type_id", "object_id", "remote_port"):
            value = int(value)
        elif name in ("serialized_data", "changes", "additional_data"):
            value = chain._json_value(json.loads(json.dumps(value)))
        elif name == "timestamp":
            value = chain._stamp(value)
        elif name == "remote_addr":
            value = chain._address(value)
        else:
            value = str(value)
        doc[name] = value
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8", "surrogatepass")


def test_the_canonical_json_is_the_documented_one_byte_for_byte():
    """``canonical`` writes the document field by field (and memoizes across a batch): every
    kind of value gives the bytes of the plain ``json.dumps`` of the docstring's rule."""
    import uuid

    at = dt.datetime(2026, 12, 1, 20, 0, 0, 123456, tzinfo=dt.UTC)
    tenant = uuid.uuid4()
    rows = [
        {"event": "app_user.ban", "action": 1, "content_type_id": 7, "object_pk": str(uuid.uuid4()),
         "object_repr": "zoë@acme.test", "changes": {"banned_until": [None, at.isoformat()], "ban_reason": ["", "spam"]},
         "changes_text": "", "actor_id": 3, "actor_email": "boss@acme.test", "tenant_id": tenant,
         "remote_addr": "2001:db8:0:0:0:0:0:1", "cid": "abc", "additional_data": {"batch": "b1", "tenant": "acme"},
         "timestamp": at},
        {"event": "x\"quoted\"\n\ttab \u2028 \ud800", "action": "2", "content_type_id": 7, "object_pk": "",
         "object_repr": "", "changes": {"n": [1.0, 2.5], "nested": {"b": [1, {"z": 3.0, "a": None}], "a": True}},
         "actor_id": None, "tenant_id": None, "remote_addr": "", "additional_data": {2: "int key", "é": "ü"},
         "serialized_data": [{"k": 1.0}], "timestamp": "2026-12-01T20:00:00+01:00", "remote_port": 443,
         "object_id": 12, "impersonator_id": uuid.uuid4()},
        {"event": "tenant.create", "timestamp": dt.datetime(2026, 1, 1, 12, 0),  # noqa: DTZ001 - naive is read as UTC
         "remote_addr": "10.0.0.1"},
    ]
    memo: dict = {}
    for row in rows + rows:  # the second pass answers from the memo
        assert chain.canonical(row, memo) == _documented_canonical(row)
        assert chain.canonical(row) == _documented_canonical(row)


def test_verify_names_the_row_edited_in_sql_and_the_row_deleted_in_sql(make_tenant):
    acme = make_tenant("acme")
    entries = _entries(acme, 5)
    assert "acme: " in _verify("--tenant", "acme")
    table = AuditEntry._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET object_repr = %s WHERE id = %s", ["mallory@acme.test", entries[1].pk])  # noqa: S608
    out = _verify_fails("--tenant", "acme")
    assert f"broken at entry {entries[1].pk}: its content was altered" in out
    with connection.cursor() as cursor:  # put it back: the chain verifies again
        cursor.execute(f"UPDATE {table} SET object_repr = %s WHERE id = %s", ["u1@acme.test", entries[1].pk])  # noqa: S608
    assert "acme: " in _verify("--tenant", "acme")
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE id = %s", [entries[3].pk])  # noqa: S608
    out = _verify_fails("--tenant", "acme")
    assert f"broken at entry {entries[4].pk}: it does not link to the entry before it" in out


def test_verify_finds_a_deleted_tail_and_a_row_inserted_behind_the_chain(make_tenant):
    acme = make_tenant("acme")
    entries = _entries(acme, 3)
    table = AuditEntry._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE id = %s", [entries[-1].pk])  # noqa: S608
    assert "the newest entries are missing" in _verify_fails("--tenant", "acme")
    # Forged: an entry written straight into the table, hashed but not through the head.
    AuditEntry.objects.filter(tenant=acme).delete()
    ChainHead.objects.filter(key=str(acme.pk)).delete()
    ok = _entries(acme, 2)
    forged = AuditEntry.objects.filter(pk=ok[-1].pk).values(*chain.CONTENT_COLUMNS).get()
    AuditEntry.objects.bulk_create([AuditEntry(**{**forged, "prev_hash": ok[-1].hash,
                                                  "hash": chain.entry_hash(ok[-1].hash, forged)})])
    assert "inserted outside the chain" in _verify_fails("--tenant", "acme")


def test_batches_are_chained_in_bulk(make_tenant, django_assert_max_num_queries):
    acme = make_tenant("acme")
    entries = [audit.Entry(event="app_user.ban", target_model=AppUser, target_pk=i, target_repr=f"u{i}")
               for i in range(300)]  # over _COPY_MIN: the COPY path on PostgreSQL
    audit.record_many(entries[:1], actor=None, tenant=acme)
    with django_assert_max_num_queries(20):
        audit.record_many(entries[1:], actor=None, tenant=acme)
    _entries(acme, 1)  # a single entry after the batch links to the batch's last one
    result = chain.verify(str(acme.pk))
    assert result.ok and result.checked == AuditEntry.objects.filter(tenant=acme).count() >= 301


def test_entries_auditlog_writes_itself_are_chained(django_user_model):
    staff = django_user_model.objects.create_user("s@example.test", "first-password-1")
    staff.name = "Sam"
    staff.save()
    logged = list(AuditEntry.objects.filter(object_pk=str(staff.pk)).order_by("id"))
    assert [e.event for e in logged] == ["accounts.user.create", "accounts.user.update"]
    assert all(e.hash and e.prev_hash for e in logged)
    assert logged[1].prev_hash == logged[0].hash
    assert chain.verify(chain.INSTANCE).ok


def test_existing_entries_are_chained_by_the_data_migration(make_tenant):
    import importlib

    from django.apps import apps

    acme = make_tenant("acme")
    _entries(acme, 3)
    audit.record(event="staff.login", actor=None, tenant=None, target_model=AppUser, target_pk="x")
    AuditEntry.objects.update(prev_hash="", hash="")  # as rows written before the chain existed
    ChainHead.objects.all().delete()
    migration = importlib.import_module("audit.migrations.0003_chain_existing_entries")
    migration.chain_existing(apps, SimpleNamespace(connection=connection))
    assert all(chain.verify(key).ok for key in (str(acme.pk), chain.INSTANCE))
    assert ChainHead.objects.get(key=str(acme.pk)).head_id == AuditEntry.objects.filter(tenant=acme).latest("id").pk


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_prune_archives_then_deletes_and_the_chain_still_verifies(make_tenant, tmp_path, fmt):
    acme = make_tenant("acme")
    AuditEntry.objects.filter(tenant=acme).delete()  # the tenant's creation: a fresh chain
    ChainHead.objects.filter(key=str(acme.pk)).delete()
    old = [_old_entry(acme, days=400 - i) for i in range(4)]
    recent = _entries(acme, 2)
    output = tmp_path / f"archive.{fmt}"
    cutoff = (timezone.now() - dt.timedelta(days=30)).date().isoformat()
    out = StringIO()
    call_command("audit", "prune", "--before", cutoff, "--tenant", "acme", "--output", str(output),
                 "--format", fmt, stdout=out)
    remaining = list(AuditEntry.objects.filter(tenant=acme).order_by("id").values_list("id", flat=True))
    assert remaining == [e.pk for e in recent]
    pruned_ids = [e.pk for e in old]
    head = ChainHead.objects.get(key=str(acme.pk))
    last_pruned = max(pruned_ids)
    assert head.anchor_id >= last_pruned and head.anchor_hash == AuditEntry.objects.get(pk=recent[0].pk).prev_hash
    assert "acme: " in _verify("--tenant", "acme")
    text = output.read_text(encoding="utf-8")
    for pk in pruned_ids:
        assert str(pk) in text
    assert head.anchor_hash in text  # the chain head the archive leads to
    if fmt == "jsonl":
        assert archive.verify_archive(output) == {str(acme.pk): head.anchor_hash}
        assert "archive verified" in _verify("--archive", str(output))
        lines = text.splitlines()
        tampered = json.loads(lines[2])
        tampered["object_repr"] = "someone-else"
        lines[2] = json.dumps(tampered)
        output.write_text("\n".join(lines) + "\n", encoding="utf-8")
        _verify_fails("--archive", str(output))


def test_prune_refuses_a_broken_chain_and_deletes_nothing(make_tenant, tmp_path):
    acme = make_tenant("acme")
    entries = _entries(acme, 3)
    table = AuditEntry._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET event = 'x' WHERE id = %s", [entries[0].pk])  # noqa: S608
    tomorrow = (timezone.now() + dt.timedelta(days=1)).date().isoformat()
    with pytest.raises(CommandError, match="nothing was pruned"):
        call_command("audit", "prune", "--before", tomorrow, "--tenant", "acme",
                     "--output", str(tmp_path / "a.jsonl"), stdout=StringIO())
    assert AuditEntry.objects.filter(tenant=acme).count() >= 3


def test_the_viewer_shows_the_chain_state_and_verifies_incrementally(make_tenant, staff_factory, as_staff, client):
    acme = make_tenant("acme")
    admin = staff_factory("ada@console.test", tenants={acme: "admin"})
    entries = _entries(acme, 3)
    as_staff(admin)
    page = client.get(f"/t/{acme.slug}/audit/").content.decode()
    head = ChainHead.objects.get(key=str(acme.pk))
    assert f"Chain verified up to entry {head.verified_id}" in page
    assert head.verified_id >= entries[-1].pk
    table = AuditEntry._meta.db_table
    more = _entries(acme, 2)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET object_repr = 'x' WHERE id = %s", [more[0].pk])  # noqa: S608
    page = client.get(f"/t/{acme.slug}/audit/").content.decode()
    assert f"Chain broken at entry {more[0].pk}" in page
    root = staff_factory("root@console.test", superuser=True)
    as_staff(root)
    page = client.get("/audit/").content.decode()
    assert "Chain verified up to entry" in page  # the instance chain is fine


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_never_fork_a_chain(make_tenant):
    acme = make_tenant("acme")
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def writer(n: int) -> None:
        try:
            barrier.wait()
            for i in range(15):
                audit.record(event="app_user.update", actor=None, tenant=acme, target_model=AppUser,
                             target_pk=f"{n}-{i}")
            audit.record_many([audit.Entry(event="app_user.ban", target_model=AppUser, target_pk=f"b{n}-{i}")
                               for i in range(210)], actor=None, tenant=acme)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    result = chain.verify(str(acme.pk))
    assert result.ok, result.broken
    assert AuditEntry.objects.filter(tenant=acme, event__in=["app_user.update", "app_user.ban"]).count() == 6 * 225
    assert result.checked == AuditEntry.objects.filter(tenant=acme).count()
