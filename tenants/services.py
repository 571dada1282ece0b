"""Tenant lifecycle: create, migrate, suspend, resume, delete (soft), restore, purge.

Every step is idempotent and resumable. ``tenant_create`` writes the record (``provisioning``),
creates the database, migrates it, then marks it ``active``; a crash anywhere leaves a record that
the same call, given the same slug, finishes. Instance admins only (``actor=None`` is the system:
the command line and first-run setup).

Refusals are the family of ``core.errors``: ``Refused`` (not an instance admin, the default
tenant), ``Invalid`` (slug, name, metadata, confirmation), ``Conflict`` (the tenant's state does
not allow it, or its database failed: code ``provisioning_failed``, ``migrate_failed``...).
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from auditlog.context import disable_auditlog
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit import services as audit
from core.access import Actor
from core.errors import Conflict, Invalid, Refused, ServiceError
from core.text import TENANT_NAME_MAX_LENGTH, UNSTORABLE, clean_text
from tenants import db, selectors
from tenants.models import Tenant, validate_slug

log = logging.getLogger(__name__)

DEFAULT_SLUG = "default"
_AUDITED_FIELDS = ("slug", "name", "status", "is_default", "db_server", "db_name", "metadata")
_CREATING = frozenset({Tenant.Status.PROVISIONING, Tenant.Status.FAILED})


def _check_actor(actor: Actor | None) -> None:
    if actor is not None and not (actor.is_active and actor.is_superuser):
        raise Refused("Only instance admins manage tenants.", code="forbidden")


def _clean_name(name: str) -> str:
    if not str(name or "").strip():
        raise Invalid("Enter a name for the tenant.", code="required", field="name")
    return clean_text(name, label="A tenant name", max_length=TENANT_NAME_MAX_LENGTH, field="name")


def _clean_slug(slug: str) -> str:
    try:
        validate_slug(slug)
    except ValidationError as exc:
        code = "reserved_slug" if exc.code == "reserved" else "invalid_slug"
        raise Invalid(f"Invalid slug {str(slug)[:60]!r}: {' '.join(exc.messages)}", code=code,
                      field="slug") from None
    return slug


def _state(tenant: Tenant, message: str) -> Conflict:
    """The tenant's status does not allow the step (code ``tenant_state``)."""
    return Conflict(message, code="tenant_state", status=tenant.status)


METADATA_MAX_CHARS = 10_000
METADATA_MAX_DEPTH = 32


def _too_deep(value: Any, limit: int = METADATA_MAX_DEPTH) -> bool:
    """Nested deeper than ``limit`` (checked without recursion: pages render it recursively)."""
    stack = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, Mapping | list | tuple):
            if level >= limit:
                return True
            values = item.values() if isinstance(item, Mapping) else item
            stack.extend((v, level + 1) for v in values)
    return False


def _has_nul(value: Any) -> bool:
    """NUL characters or lone surrogates: neither a database nor a UTF-8 page can hold them."""
    if isinstance(value, str):
        return UNSTORABLE.search(value) is not None
    if isinstance(value, Mapping):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


def _bad_metadata(message: str) -> Invalid:
    return Invalid(message, code="invalid_metadata", field="metadata")


def _clean_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise _bad_metadata("Tenant metadata must be a JSON object.")
    if _too_deep(metadata):
        raise _bad_metadata(f"Tenant metadata is nested more than {METADATA_MAX_DEPTH} levels deep.")
    try:
        # allow_nan=False: NaN and 1e309 (infinity) are not JSON; the databases refuse them.
        size = len(json.dumps(metadata, allow_nan=False))
    except (TypeError, ValueError):
        raise _bad_metadata("Tenant metadata must be plain JSON values.") from None
    if size > METADATA_MAX_CHARS:
        raise _bad_metadata(f"Tenant metadata has at most {METADATA_MAX_CHARS:,} characters of JSON.")
    # PostgreSQL's jsonb cannot store NUL characters; refuse them with a message, not a 500.
    if _has_nul(metadata):
        raise _bad_metadata("Tenant metadata cannot contain NUL characters or lone surrogates.")
    return dict(metadata)


def _new_db_name(slug: str) -> str:
    # A random suffix: a database left on the server by an earlier install is never adopted.
    return f"{settings.TENANT_DB_PREFIX}{slug.replace('-', '_')}_{secrets.token_hex(3)}"


def _save(tenant: Tenant, *fields: str) -> None:
    with disable_auditlog():
        tenant.save(update_fields=[*fields, "updated_at"])


def _audit(event: str, *, actor: Actor | None, tenant: Tenant, before: dict[str, Any] | None = None,
           data: dict[str, Any] | None = None, action: int = audit.UPDATE) -> None:
    audit.record(
        event=event,
        actor=actor,
        tenant=tenant,
        target=tenant,
        action=action,
        before=before,
        after=audit.snapshot(tenant, _AUDITED_FIELDS) if before is not None else None,
        data=data,
    )


def tenant_create(
    *,
    actor: Actor | None,
    slug: str,
    name: str,
    metadata: Mapping[str, Any] | None = None,
    db_server: str | None = None,
    is_default: bool = False,
) -> Tenant:
    """Create a tenant with its own database, or finish one whose creation was interrupted."""
    tenant = tenant_register(
        actor=actor, slug=slug, name=name, metadata=metadata, db_server=db_server,
        is_default=is_default,
    )
    return _provision(tenant, actor=actor)


def tenant_register(
    *,
    actor: Actor | None,
    slug: str,
    name: str,
    metadata: Mapping[str, Any] | None = None,
    db_server: str | None = None,
    is_default: bool = False,
) -> Tenant:
    """The first step of a creation: write the record (``provisioning``), nothing else yet.

    Returns the existing record when one with this slug is still ``provisioning`` or ``failed``
    (the creation resumes). ``tenant_provision_step`` / ``tenant_retry`` do the rest.
    """
    _check_actor(actor)
    slug = _clean_slug(slug)
    name = _clean_name(name)
    metadata = _clean_metadata(metadata)
    existing = Tenant.objects.filter(slug=slug).first()
    server = db_server or (existing.db_server if existing else place_tenant())
    db.server_settings(server)  # refuses an unknown server before anything is written

    tenant = existing
    if tenant is not None and tenant.status not in _CREATING:
        raise Conflict(f"A tenant with the slug {slug!r} already exists ({tenant.status}).",
                       code="exists", field="slug")
    if tenant is None:
        try:
            with transaction.atomic(), disable_auditlog():
                tenant = Tenant.objects.create(
                    slug=slug,
                    name=name,
                    metadata=metadata,
                    db_server=server,
                    db_name=_new_db_name(slug),
                    is_default=is_default,
                    status=Tenant.Status.PROVISIONING,
                )
                _audit("tenant.create", actor=actor, tenant=tenant, before={}, action=audit.CREATE)
        except IntegrityError:
            # A concurrent create of the same slug won the race: resume that one.
            tenant = Tenant.objects.get(slug=slug)
            if tenant.status not in _CREATING:
                raise Conflict(f"A tenant with the slug {slug!r} already exists.", code="exists",
                               field="slug") from None
    return tenant


def place_tenant() -> str:
    """The server a new tenant goes to. ``TENANT_PLACEMENT=count`` (the default): the server
    with the fewest tenants (purged ones do not count; ties go to ``TENANT_DEFAULT_SERVER``,
    then in the order of ``TENANT_DATABASE_SERVERS``), skipping those that hold
    ``TENANT_MAX_PER_SERVER`` already (0: no maximum). ``default``: always
    ``TENANT_DEFAULT_SERVER``. Refuses when every server is full."""
    from django.db.models import Count

    default = settings.TENANT_DEFAULT_SERVER
    if getattr(settings, "TENANT_PLACEMENT", "count") == "default":
        candidates = [default]
    else:
        keys = db.server_keys()
        candidates = [default, *(k for k in keys if k != default)]
    counts = dict(
        Tenant.objects.exclude(status=Tenant.Status.PURGED).filter(db_server__in=candidates)
        .values_list("db_server").annotate(n=Count("pk")).values_list("db_server", "n")
    )
    limit = int(getattr(settings, "TENANT_MAX_PER_SERVER", 0) or 0)
    open_ = [k for k in candidates if not limit or counts.get(k, 0) < limit]
    if not open_:
        raise Conflict(
            f"Every tenant database server holds its maximum of {limit} tenants "
            "(TENANT_MAX_PER_SERVER); add a server to TENANT_DATABASE_SERVERS or raise the maximum.",
            code="servers_full")
    return min(open_, key=lambda k: (counts.get(k, 0), candidates.index(k)))


def tenant_retry(*, actor: Actor | None, tenant: Tenant) -> Tenant:
    """Finish the creation of a tenant left ``provisioning`` or ``failed``."""
    _check_actor(actor)
    if tenant.status not in _CREATING:
        raise _state(tenant, f"Tenant {tenant.slug!r} is {tenant.status}; nothing to retry.")
    return _provision(tenant, actor=actor)


# The steps of provisioning, in order. Each one is idempotent and can run on its own (the
# console runs them one request at a time to show progress); ``_provision`` runs them all.
PROVISION_STEPS = ("database", "migrate", "activate")


def _fail(tenant: Tenant, *, actor: Actor | None, exc: BaseException) -> Conflict:
    log.exception("Provisioning tenant %s failed", tenant.slug)
    before = audit.snapshot(tenant, _AUDITED_FIELDS)
    tenant.status = Tenant.Status.FAILED
    tenant.last_error = str(exc)[:2000]
    _save(tenant, "status", "last_error")
    _audit("tenant.create_failed", actor=actor, tenant=tenant, before=before,
           data={"error": tenant.last_error})
    return Conflict(
        f"Creating the database of {tenant.slug!r} failed: {exc}. "
        f"Run the same command again to retry.",
        code="provisioning_failed",
    )


def _run_step(tenant: Tenant, *, actor: Actor | None, step: str, facts: dict[str, Any]) -> dict[str, Any]:
    """Run one provisioning step; returns what it did. Failure marks the tenant ``failed``."""
    if step not in PROVISION_STEPS:
        raise Invalid(f"Unknown provisioning step {step[:40]!r}.", code="unknown_step", field="step")
    if tenant.status == Tenant.Status.ACTIVE:
        return {"step": step, "skipped": True}  # finished already (another tab, a retry)
    if tenant.status not in _CREATING:
        raise _state(tenant, f"Tenant {tenant.slug!r} is {tenant.status}; it is not being created.")
    result: dict[str, Any] = {"step": step}
    try:
        if step == "database":
            result["created"] = db.create_database(tenant)
        elif step == "migrate":
            try:
                version = db.migrate_database(tenant)
            except db.TenantDatabaseError:
                if not db.database_exists(tenant):
                    raise db.TenantDatabaseError("The database does not exist yet.") from None
                raise
            tenant.schema_version = version
            _save(tenant, "schema_version")
            result["schema_version"] = version
    except Exception as exc:  # noqa: BLE001 - any failure is recorded and reported
        raise _fail(tenant, actor=actor, exc=exc) from exc
    if step != "activate":
        if tenant.status == Tenant.Status.FAILED:  # a retried step worked: creation resumes
            tenant.status = Tenant.Status.PROVISIONING
            tenant.last_error = ""
            _save(tenant, "status", "last_error")
        return result
    # activate: only a database at the newest schema becomes active.
    if tenant.schema_version != db.latest_schema_version():
        raise _fail(tenant, actor=actor, exc=db.TenantDatabaseError(
            "The database is not at the newest schema yet; run the migrate step first."))
    before = audit.snapshot(tenant, _AUDITED_FIELDS)
    tenant.status = Tenant.Status.ACTIVE
    tenant.last_error = ""
    with transaction.atomic():  # one commit: active and audited together
        _save(tenant, "status", "last_error")
        _audit("tenant.provisioned", actor=actor, tenant=tenant, before=before,
               data={**facts, "schema_version": tenant.schema_version})
    return {"step": step, "status": tenant.status}


def tenant_provision_step(*, actor: Actor | None, tenant: Tenant, step: str) -> dict[str, Any]:
    """Run one step of a tenant's creation (``database``, ``migrate`` or ``activate``).

    Idempotent: a step that already happened does nothing harmful, and a tenant that is already
    active answers ``{"skipped": True}``. A failure marks the tenant ``failed`` with its error
    and raises ``Conflict`` (code ``provisioning_failed``); running the step again resumes.
    """
    _check_actor(actor)
    return _run_step(tenant, actor=actor, step=step, facts={})


def _provision(tenant: Tenant, *, actor: Actor | None) -> Tenant:
    facts: dict[str, Any] = {}
    for step in PROVISION_STEPS:
        result = _run_step(tenant, actor=actor, step=step, facts=facts)
        if step == "database":
            facts["database_created"] = result.get("created", False)
    return tenant


def tenant_update(
    *, actor: Actor | None, tenant: Tenant, name: str, metadata: Mapping[str, Any] | None
) -> Tenant:
    """Change a tenant's name and metadata (the slug and placement never change)."""
    _check_actor(actor)
    name = _clean_name(name)
    metadata = _clean_metadata(metadata)
    with transaction.atomic():
        tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
        if tenant.status == Tenant.Status.PURGED:
            raise _state(tenant, f"Tenant {tenant.slug!r} was purged; it cannot be edited.")
        if tenant.name == name and tenant.metadata == metadata:
            return tenant
        before = audit.snapshot(tenant, _AUDITED_FIELDS)
        tenant.name = name
        tenant.metadata = metadata
        _save(tenant, "name", "metadata")
        _audit("tenant.update", actor=actor, tenant=tenant, before=before)
    return tenant


def recorded_current(tenant: Tenant) -> bool:
    """The tenant's recorded schema is the newest (and it is not being created): ``migrate
    --all`` skips it without opening its database."""
    return tenant.status not in _CREATING and tenant.schema_version == db.latest_schema_version()


def tenant_migrate(*, actor: Actor | None, tenant: Tenant, skip_current: bool = False) -> dict[str, Any]:
    """Bring the tenant's database to the newest schema. Returns ``{"from": .., "to": ..}``.
    ``skip_current``: a tenant whose recorded schema is the newest answers at once, unaudited
    (``migrate --all``, on the command line and as a job)."""
    _check_actor(actor)
    if skip_current and tenant.status != Tenant.Status.PURGED and recorded_current(tenant):
        return {"from": dict(tenant.schema_version), "to": dict(tenant.schema_version)}
    if tenant.status == Tenant.Status.PURGED:
        raise _state(tenant, f"Tenant {tenant.slug!r} was purged; it has no database.")
    if tenant.status in _CREATING:
        tenant = _provision(tenant, actor=actor)
        return {"from": {}, "to": tenant.schema_version}
    previous = dict(tenant.schema_version)
    try:
        version = db.migrate_database(tenant)
    except db.TenantDatabaseError as exc:
        _audit("tenant.migrate_failed", actor=actor, tenant=tenant, data={"error": str(exc)})
        raise Conflict(str(exc), code="migrate_failed") from exc
    tenant.schema_version = version
    with transaction.atomic():  # one commit: the version and its audit entry
        _save(tenant, "schema_version")
        _audit("tenant.migrate", actor=actor, tenant=tenant, data={"from": previous, "to": version})
    return {"from": previous, "to": version}


@dataclass(frozen=True)
class MigrateOutcome:
    """One tenant's part of ``tenant_migrate_all``: its ``{"from", "to"}`` or the error."""

    tenant: Tenant
    result: dict[str, Any] | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


def migrate_concurrency() -> int:
    """Tenants migrated at once per server by ``tenant_migrate_all`` (1 on SQLite: one writer)."""
    if db.control_vendor() != "postgresql":
        return 1
    return max(int(getattr(settings, "TENANT_MIGRATE_CONCURRENCY", 4)), 1)


def tenant_migrate_all(*, actor: Actor | None, recheck: bool = False) -> list[MigrateOutcome]:
    """Migrate every tenant that has a database; a tenant that fails is reported (and audited
    by ``tenant_migrate``) and the others still go on.

    A tenant whose recorded schema is the newest is skipped without opening its database
    (``recheck=True`` asks each database anyway: one query each). The others are migrated by a
    pool of ``TENANT_MIGRATE_CONCURRENCY`` threads per server (servers side by side), each
    thread with its own connections, closed when it ends. Outcomes come back in list order."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    _check_actor(actor)
    latest = db.latest_schema_version()
    tenants = list(selectors.tenant_list())
    outcomes: dict[Any, MigrateOutcome] = {}
    todo: dict[str, list[Tenant]] = {}
    for tenant in tenants:
        if not recheck and recorded_current(tenant):
            outcomes[tenant.pk] = MigrateOutcome(tenant, {"from": dict(latest), "to": dict(latest)})
        else:
            todo.setdefault(tenant.db_server, []).append(tenant)

    def one(tenant: Tenant) -> MigrateOutcome:
        try:
            return MigrateOutcome(tenant, tenant_migrate(actor=actor, tenant=tenant))
        except ServiceError as exc:
            return MigrateOutcome(tenant, error=exc.message)
        finally:
            db.close_connection(tenant)
            if threading.current_thread() is not threading.main_thread():
                connections.close_all()  # this pool thread's control connection too

    width = migrate_concurrency()
    # Inside a caller's transaction the pool threads would not see its rows and would wait on its
    # locks (the audit chain's head row: a deadlock with this thread): migrate in this thread.
    in_transaction = connections["default"].in_atomic_block
    if width == 1 or in_transaction or sum(len(group) for group in todo.values()) <= 1:
        for group in todo.values():
            for tenant in group:
                outcomes[tenant.pk] = one(tenant)
    else:
        pools = [ThreadPoolExecutor(max_workers=width, thread_name_prefix=f"migrate-{server}")
                 for server in todo]
        try:
            futures = [(tenant, pool.submit(one, tenant))
                       for pool, group in zip(pools, todo.values(), strict=True) for tenant in group]
            for tenant, future in futures:
                outcomes[tenant.pk] = future.result()
        finally:
            for pool in pools:
                pool.shutdown(wait=True)
    return [outcomes[t.pk] for t in tenants]


def _transition(
    *, actor: Actor | None, tenant: Tenant, event: str, allowed_from: set[str], to: str,
    stamp: dict[str, Any],
) -> Tenant:
    _check_actor(actor)
    with transaction.atomic():
        tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
        if tenant.status == to:
            return tenant  # idempotent
        if tenant.status not in allowed_from:
            raise _state(
                tenant,
                f"Tenant {tenant.slug!r} is {tenant.status}; it cannot be {event.split('.')[1]}d.",
            )
        before = audit.snapshot(tenant, _AUDITED_FIELDS)
        tenant.status = to
        for key, value in stamp.items():
            setattr(tenant, key, value)
        _save(tenant, "status", *stamp)
        _audit(event, actor=actor, tenant=tenant, before=before)
    return tenant


def tenant_suspend(*, actor: Actor | None, tenant: Tenant) -> Tenant:
    """Suspend: app users are refused in the portal; staff can still read and act."""
    return _transition(
        actor=actor, tenant=tenant, event="tenant.suspend",
        allowed_from={Tenant.Status.ACTIVE}, to=Tenant.Status.SUSPENDED,
        stamp={"suspended_at": timezone.now()},
    )


def tenant_resume(*, actor: Actor | None, tenant: Tenant) -> Tenant:
    return _transition(
        actor=actor, tenant=tenant, event="tenant.resume",
        allowed_from={Tenant.Status.SUSPENDED}, to=Tenant.Status.ACTIVE,
        stamp={"suspended_at": None},
    )


def tenant_delete(*, actor: Actor | None, tenant: Tenant) -> Tenant:
    """Soft delete: all access off, the database and its data kept (``tenant_restore`` undoes)."""
    if tenant.is_default:
        raise Refused("The default tenant cannot be deleted.", code="default_tenant")
    return _transition(
        actor=actor, tenant=tenant, event="tenant.delete",
        allowed_from={Tenant.Status.ACTIVE, Tenant.Status.SUSPENDED, Tenant.Status.FAILED},
        to=Tenant.Status.DELETED, stamp={"deleted_at": timezone.now()},
    )


def tenant_restore(*, actor: Actor | None, tenant: Tenant) -> Tenant:
    return _transition(
        actor=actor, tenant=tenant, event="tenant.restore",
        allowed_from={Tenant.Status.DELETED}, to=Tenant.Status.ACTIVE,
        stamp={"deleted_at": None, "suspended_at": None},
    )


def tenant_purge(*, actor: Actor | None, tenant: Tenant, confirm_slug: str) -> Tenant:
    """Irreversible: drop the tenant's database. Only after a soft delete, confirmed by slug.

    The tenant record stays (status ``purged``) so the audit trail keeps pointing at it and the
    slug is never handed to somebody else.
    """
    _check_actor(actor)
    if tenant.is_default:
        raise Refused("The default tenant cannot be purged.", code="default_tenant")
    if confirm_slug != tenant.slug:
        raise Invalid("Type the tenant's slug exactly to confirm the purge.",
                      code="confirm_mismatch", field="confirm_slug")
    if tenant.status == Tenant.Status.PURGED:
        db.drop_database(tenant)  # finishes an interrupted purge; no-op otherwise
        return tenant
    if tenant.status != Tenant.Status.DELETED:
        raise _state(tenant, f"Delete tenant {tenant.slug!r} before purging it (it is {tenant.status}).")
    try:
        dropped = db.drop_database(tenant)
    except db.TenantDatabaseError as exc:
        raise Conflict(str(exc), code="purge_failed") from exc
    before = audit.snapshot(tenant, _AUDITED_FIELDS)
    tenant.status = Tenant.Status.PURGED
    tenant.purged_at = timezone.now()
    _save(tenant, "status", "purged_at")
    _audit("tenant.purge", actor=actor, tenant=tenant, before=before,
           data={"database_dropped": dropped})
    return tenant


def tenant_ensure_default(*, actor: Actor | None) -> Tenant:
    """The default tenant exists and is active (first migrate and first-run setup call this)."""
    tenant = Tenant.objects.filter(is_default=True).first()
    if tenant is None:
        return tenant_create(actor=actor, slug=DEFAULT_SLUG, name="Default", is_default=True)
    if tenant.status in _CREATING:
        return _provision(tenant, actor=actor)
    return tenant
