"""Builds (once) a tenant with N app users for the benchmarks, loaded with COPY on PostgreSQL.

The data set is deterministic (seeded) so runs are comparable. A tenant named ``bench-<N>`` is
kept between runs: a second run finds it complete and starts at once.
"""

from __future__ import annotations

import random
import time
import uuid
from datetime import UTC, datetime, timedelta

from django.db import connections

from accounts.models import AppUser
from tenants import db as tenant_db
from tenants import services
from tenants.models import Tenant

FIRST = (
    "james mary john patricia robert jennifer michael linda william elizabeth david barbara richard "
    "susan joseph jessica thomas sarah charles karen christopher nancy daniel lisa matthew betty "
    "anthony margaret mark sandra donald ashley steven kimberly paul emily andrew donna joshua michelle "
    "kenneth carol kevin amanda brian dorothy george melissa timothy deborah ronald stephanie edward "
    "rebecca jason sharon jeffrey laura ryan cynthia jacob kathleen gary amy nicholas angela eric "
    "shirley jonathan anna stephen brenda larry pamela justin emma scott nicole brandon helen benjamin "
    "samantha samuel katherine gregory christine alexander debra frank rachel patrick carolyn raymond "
    "janet jack catherine dennis maria jerry heather tyler diane aaron ruth jose julie adam olivia "
    "nathan joyce henry virginia douglas victoria zachary kelly peter lauren kyle christina ethan joan "
    "walter evelyn noah judith jeremy megan christian andrea keith cheryl roger hannah terry jacqueline"
).split()
LAST = (
    "smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez lopez "
    "gonzalez wilson anderson thomas taylor moore jackson martin lee perez thompson white harris "
    "sanchez clark ramirez lewis robinson walker young allen king wright scott torres nguyen hill "
    "flores green adams nelson baker hall rivera campbell mitchell carter roberts gomez phillips evans "
    "turner diaz parker cruz edwards collins reyes stewart morris morales murphy cook rogers gutierrez "
    "ortiz morgan cooper peterson bailey reed kelly howard ramos kim cox ward richardson watson brooks "
    "chavez wood james bennett gray mendoza ruiz hughes price alvarez castillo sanders patel myers long "
    "ross foster jimenez powell jenkins perry russell sullivan bell coleman butler henderson barnes"
).split()
DOMAINS = (
    "gmail.com yahoo.com outlook.com hotmail.com icloud.com proton.me example.com acme.io "
    "globex.com initech.net umbrella.org hooli.xyz stark.dev wayne.co aperture.ai"
).split()
RARE_TERM = "quixotically"  # in exactly RARE_COUNT names
RARE_COUNT = 7
COLUMNS = (
    "id", "email", "name", "role", "password", "password_changed_at", "email_confirmed_at",
    "invited_at", "invited_by", "banned_until", "ban_reason", "last_sign_in_at", "mfa_enabled",
    "deleted_at", "user_metadata", "app_metadata", "created_at", "updated_at",
)
EPOCH = datetime(2023, 1, 1, tzinfo=UTC)
SPAN = timedelta(days=3 * 365)


def slug_for(n: int) -> str:
    return f"bench-{n}"


def _rows(n: int):
    rnd = random.Random(20261120)  # noqa: S311 - benchmark data, not secrets
    rare = set(rnd.sample(range(n), min(RARE_COUNT, n)))
    for i in range(n):
        first, last, domain = rnd.choice(FIRST), rnd.choice(LAST), rnd.choice(DOMAINS)
        created = EPOCH + SPAN * (i / max(n, 1)) + timedelta(seconds=rnd.randint(0, 59))
        name = f"{first.title()} {last.title()}"
        if i in rare:
            name = f"{first.title()} {RARE_TERM.title()}"
        r = rnd.random()
        confirmed = None if r < 0.04 else created + timedelta(minutes=5)
        invited = created if r < 0.02 else None
        banned = (created + timedelta(days=3650)) if 0.5 < r < 0.51 else None
        deleted = (created + timedelta(days=1)) if 0.6 < r < 0.605 else None
        last_sign_in = None if confirmed is None or r > 0.9 else created + timedelta(days=rnd.randint(0, 700))
        yield (
            str(uuid.UUID(int=rnd.getrandbits(128), version=4)),
            f"{first}.{last}{i}@{domain}",
            name,
            "admin" if r > 0.999 else "user",
            "",
            None,
            confirmed,
            invited,
            None,
            banned,
            "",
            last_sign_in,
            r < 0.2,
            deleted,
            "{}",
            "{}",
            created,
            created,
        )


def ensure_dataset(n: int, *, log=print) -> Tenant:
    slug = slug_for(n)
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None or tenant.status != Tenant.Status.ACTIVE:
        tenant = services.tenant_create(actor=None, slug=slug, name=f"Benchmark {n:,}")
    alias = tenant_db.using(tenant)
    have = AppUser.objects.using(alias).count()
    if have == n:
        log(f"dataset: reusing tenant {slug} with {n:,} users")
        if connections[alias].vendor == "postgresql":
            # Earlier runs banned and unbanned thousands of rows: start every run from the same
            # clean state (no dead tuples, fresh statistics), outside any timing.
            with connections[alias].cursor() as cursor:
                cursor.execute("VACUUM ANALYZE accounts_appuser")
                try:  # flush what VACUUM dirtied now, not in the middle of the measurements
                    cursor.execute("CHECKPOINT")
                except Exception:  # noqa: BLE001, S110 - needs superuser; optional
                    pass
        return tenant
    log(f"dataset: loading {n:,} users into {slug} (found {have:,})...")
    started = time.perf_counter()
    AppUser.objects.using(alias).all().delete()
    conn = connections[alias]
    if conn.vendor == "postgresql":
        _load_postgres(conn, n)
    else:
        _load_sqlite(conn, n)
    log(f"dataset: loaded in {time.perf_counter() - started:.1f}s")
    return tenant


def _load_postgres(conn, n: int) -> None:
    conn.ensure_connection()
    raw = conn.connection
    cols = ", ".join(COLUMNS)
    with conn.cursor() as cursor:
        # Indexes are built after the load: much faster than maintaining them row by row.
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'accounts_appuser' "
            "AND indexname NOT LIKE '%%_pkey'"
        )
        indexes = cursor.fetchall()
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX IF EXISTS "{name}"')  # noqa: S608 - names from the catalog
    with raw.cursor() as cur, cur.copy(f"COPY accounts_appuser ({cols}) FROM STDIN") as copy:  # noqa: S608
        for row in _rows(n):
            copy.write_row(row)
    with conn.cursor() as cursor:
        for _name, definition in indexes:
            cursor.execute(definition)
        cursor.execute("ANALYZE accounts_appuser")


def _sqlite_value(value):
    # Django's SQLite storage: naive UTC datetimes, UUIDs as 32 hex characters.
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
    if isinstance(value, str) and len(value) == 36 and value.count("-") == 4:
        return uuid.UUID(value).hex
    return value


def _load_sqlite(conn, n: int) -> None:
    placeholders = ", ".join(["%s"] * len(COLUMNS))
    sql = f"INSERT INTO accounts_appuser ({', '.join(COLUMNS)}) VALUES ({placeholders})"  # noqa: S608
    batch: list[tuple] = []
    with conn.cursor() as cursor:
        for row in _rows(n):
            batch.append(tuple(_sqlite_value(v) for v in row))
            if len(batch) == 20_000:
                cursor.executemany(sql, batch)
                batch.clear()
        if batch:
            cursor.executemany(sql, batch)
        cursor.execute("ANALYZE")

