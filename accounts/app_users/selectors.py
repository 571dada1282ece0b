"""Reads of a tenant's app users: the list (search, filters, sort, keyset pages, capped count),
one user, and what hangs off a user (sessions, factors, pending links, audit history).

Fast at millions of rows: pages are keyset pages over the indexes of ``AppUser.Meta``, never
``OFFSET``; the total is counted through ``LIMIT cap + 1`` (or the planner's estimate when the
list is unfiltered on PostgreSQL), never an unbounded ``COUNT(*)``.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any

from django.db import connections, transaction
from django.db.models import F, OuterRef, Q, QuerySet, Subquery
from django.db.models.base import ModelState
from django.db.models.functions import Lower
from django.utils import timezone

from accounts.models import ActionToken, AppFactor, AppSession, AppUser
from audit.models import AuditEntry
from core.emails import canonical_email
from core.policy import policy
from tenants import db as tenant_db
from tenants.models import Tenant

STATUSES = ("active", "invited", "unconfirmed", "banned", "deleted")
SORTS = ("-created", "created", "-last_sign_in", "last_sign_in", "email", "-email", "name", "-name", "role", "-role",
         "status", "-status")
PER_PAGE_CHOICES = (25, 50, 100)
DEFAULT_PER_PAGE = 50
MAX_QUERY_LENGTH = 200

# sort name -> (ordering key, nullable).
_SORT_KEYS: dict[str, tuple[str, bool]] = {
    "created": ("created_at", False),
    "last_sign_in": ("last_sign_in_at", True),
    # The stored address is canonical (core.emails: case-folded, ASCII), so it sorts as its lower
    # case would, and it is unique: the unique index (appuser_email_unique) is the email sort's.
    "email": ("email", False),
    "name": ("name_l", False),  # LOWER(name), indexed with id (appuser_name_keyset)
    "role": ("role", False),  # indexed with id (appuser_role_keyset)
    # Derived (a ban runs out with time): one segment per status, in STATUSES order, each read by
    # id under its own condition (status_q, evaluated now), so a page never shows a stale status.
    "status": ("status", False),
}
_TEXT_KEYS = frozenset({"email", "name_l", "role"})
_LOWERED = {"name_l": "name"}


def _with_key(qs: QuerySet, key: str) -> QuerySet:
    """Annotate the lower-cased column a text sort orders on (the indexed expression)."""
    return qs.annotate(**{key: Lower(_LOWERED[key])}) if key in _LOWERED else qs


@dataclass(frozen=True)
class UserFilters:
    """The whole state of the users list (what the URL carries, minus the cursor)."""

    q: str = ""
    status: str = ""
    role: str = ""
    mfa: str = ""  # "", "yes", "no"
    created_from: date | None = None
    created_to: date | None = None
    signin_from: date | None = None
    signin_to: date | None = None
    sort: str = "-created"

    @property
    def is_filtered(self) -> bool:
        return any(
            (self.q, self.status, self.role, self.mfa, self.created_from, self.created_to,
             self.signin_from, self.signin_to)
        )

    def as_params(self) -> dict[str, str]:
        """Non-default values as query parameters (for links, hidden inputs and the CSV)."""
        params: dict[str, str] = {}
        for name in ("q", "status", "role", "mfa"):
            if getattr(self, name):
                params[name] = getattr(self, name)
        for name in ("created_from", "created_to", "signin_from", "signin_to"):
            if getattr(self, name):
                params[name] = getattr(self, name).isoformat()
        if self.sort != "-created":
            params["sort"] = self.sort
        return params


def _as_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value.strip())
    except (ValueError, AttributeError):
        return None


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def _day_after(day: date) -> datetime | None:
    """The start of the next day; ``None`` after the last representable day (no upper bound)."""
    return None if day >= date.max else _day_start(day + timedelta(days=1))


def status_q(status: str, *, now: datetime | None = None) -> Q:
    """The condition of one status, as ``AppUser.status`` computes it."""
    now = now or timezone.now()
    alive = Q(deleted_at__isnull=True)
    # Through the table of set bans and its index (accounts.ban_table): no index of the user
    # table names banned_until, so that a ban is a HOT update.
    banned = Q(ban_row__banned_until__gt=now)
    not_banned = Q(banned_until__isnull=True) | Q(banned_until__lte=now)
    invited = Q(invited_at__isnull=False, password="")
    if status == "deleted":
        return Q(deleted_at__isnull=False)
    if status == "banned":
        return alive & banned
    if status == "active":
        return alive & not_banned & Q(email_confirmed_at__isnull=False)
    if status == "invited":
        return alive & not_banned & Q(email_confirmed_at__isnull=True) & invited
    if status == "unconfirmed":
        return alive & not_banned & Q(email_confirmed_at__isnull=True) & ~invited
    raise ValueError(status)


def search_q(q: str) -> Q:
    """Exact id when the query is a UUID; otherwise a substring of email or name.

    On PostgreSQL ``icontains`` compiles to ``UPPER(col::text) LIKE UPPER(%s)``, which the
    ``pg_trgm`` GIN indexes on ``UPPER(email)`` and ``UPPER(name)`` serve. Below three
    characters a trigram index cannot narrow a ``%q%`` pattern, so a short query matches the
    start of the email or the name instead (``q%`` patterns are served by the same indexes).
    """
    q = q.strip()
    as_id = _as_uuid(q)
    if as_id is not None:
        return Q(pk=as_id)
    if len(q) < 3:
        return Q(email__istartswith=q) | Q(name__istartswith=q)
    return Q(email__icontains=q) | Q(name__icontains=q)


def app_user_queryset(*, tenant: Tenant) -> QuerySet[AppUser]:
    return AppUser.objects.using(tenant_db.using(tenant))


def app_user_filter(*, tenant: Tenant, filters: UserFilters) -> QuerySet[AppUser]:
    """The users matching ``filters`` (no ordering, no page): also what a batch "all matching" touches."""
    qs = app_user_queryset(tenant=tenant)
    f = filters
    if f.q:
        qs = qs.filter(search_q(f.q))
    if f.status in STATUSES:
        qs = qs.filter(status_q(f.status))
    if f.role:
        qs = qs.filter(role=f.role)
    if f.mfa in ("yes", "no"):
        qs = qs.filter(mfa_enabled=(f.mfa == "yes"))
    if f.created_from:
        qs = qs.filter(created_at__gte=_day_start(f.created_from))
    if f.created_to and _day_after(f.created_to) is not None:
        qs = qs.filter(created_at__lt=_day_after(f.created_to))
    if f.signin_from:
        qs = qs.filter(last_sign_in_at__gte=_day_start(f.signin_from))
    if f.signin_to:
        end = _day_after(f.signin_to)
        qs = qs.filter(last_sign_in_at__lt=end) if end else qs.filter(last_sign_in_at__isnull=False)
    return qs


# --- Keyset pages ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    """A position in one sort: segment (nullable sorts page non-null values, then nulls), the
    sort key's value and the id of the row, and the direction to read from there."""

    sort: str
    segment: int
    value: Any
    pk: str
    direction: str  # "n" (rows after) or "p" (rows before)


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"t": value.isoformat()}
    return value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict) and isinstance(value.get("t"), str):
        parsed = datetime.fromisoformat(value["t"])
        if timezone.is_naive(parsed):
            raise ValueError("naive datetime")
        return parsed
    if value is None or (isinstance(value, str) and "\x00" not in value):
        return value  # NUL: PostgreSQL refuses it in a text parameter (a 500, not a page)
    raise ValueError("bad cursor value")


def encode_cursor(cursor: Cursor) -> str:
    payload = {
        "o": cursor.sort, "s": cursor.segment, "v": _encode_value(cursor.value),
        "i": cursor.pk, "d": cursor.direction,
    }
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str, *, sort: str) -> Cursor | None:
    """The cursor, or ``None`` for anything malformed or made for another sort (first page)."""
    if not token or len(token) > 600:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("o") != sort:
            return None
        segment = data["s"]
        direction = data["d"]
        pk = _as_uuid(data["i"])
        value = _decode_value(data["v"])
        if not isinstance(segment, int) or isinstance(segment, bool) or direction not in ("n", "p") or pk is None:
            return None
        key, nullable = _SORT_KEYS[sort.lstrip("-")]
        if key == "status":
            if not 0 <= segment < len(STATUSES) or value is not None:
                return None
            return Cursor(sort=sort, segment=segment, value=None, pk=str(pk), direction=direction)
        if segment not in (0, 1):
            return None
        if segment == 1 and not nullable:
            return None
        if segment == 0 and (value is None or (key in _TEXT_KEYS) != isinstance(value, str)):
            return None
        return Cursor(sort=sort, segment=segment, value=value, pk=str(pk), direction=direction)
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None


@dataclass
class UserPage:
    rows: list[AppUser]
    per_page: int
    next_cursor: str | None = None
    prev_cursor: str | None = None
    total: int = 0
    total_exact: bool = True  # False: "cap+" (more than the exact-count cap)
    filters: UserFilters = field(default_factory=UserFilters)
    # ``defer_total``: many matches were found, ``total`` is a lower bound ("at least"), and the
    # exact capped count is left for a request of its own after the rows (``app_user_matching_count``).
    total_deferred: bool = False

    @property
    def total_label(self) -> str:
        if self.total_deferred:
            return f"{self.total:,}+"
        cap = policy().exact_count_cap
        return f"{self.total:,}" if self.total_exact else f"{cap:,}+"


class _Keyset:
    """Orders and compares one sort. A nullable key pages its non-null values first, then its
    nulls by id (the same direction), so every page is one index range read, whatever the
    backend's NULL ordering."""

    def __init__(self, sort: str):
        self.sort = sort
        self.desc = sort.startswith("-")
        self.key, nullable = _SORT_KEYS[sort.lstrip("-")]
        self.by_status = self.key == "status"
        self.segments = len(STATUSES) if self.by_status else 2 if nullable else 1
        self.now = timezone.now()
        # The status sort's segments in reading order ("-status": deleted first).
        self.statuses = tuple(reversed(STATUSES)) if self.desc else STATUSES

    def segment_q(self, segment: int) -> Q:
        if self.by_status:
            return status_q(self.statuses[segment], now=self.now)
        if self.segments == 1:
            return Q()
        return Q(**{f"{self.key}__isnull": segment == 1})

    def order(self, qs: QuerySet, segment: int, backwards: bool) -> QuerySet:
        desc = self.desc != backwards
        by_id = F("id").desc() if desc else F("id").asc()
        if segment == 1 or self.by_status:
            return qs.order_by(by_id)
        by_key = F(self.key).desc() if desc else F(self.key).asc()
        return qs.order_by(by_key, by_id)

    def beyond(self, cursor: Cursor, backwards: bool) -> Q:
        """Rows strictly after (or before) the cursor within its segment.

        Written ``key <= v AND (key < v OR id < pk)`` rather than a bare OR, so the first
        comparison bounds the index range and deep pages cost what the first page costs.
        """
        desc = self.desc != backwards
        op, op_eq = ("lt", "lte") if desc else ("gt", "gte")
        if cursor.segment == 1 or self.by_status:
            return Q(**{f"id__{op}": cursor.pk})
        return Q(**{f"{self.key}__{op_eq}": cursor.value}) & (
            Q(**{f"{self.key}__{op}": cursor.value}) | Q(**{f"id__{op}": cursor.pk})
        )

    def cursor_for(self, row: AppUser, direction: str) -> str:
        if self.by_status:
            segment = self.statuses.index(row.status_at(self.now))
            return encode_cursor(Cursor(sort=self.sort, segment=segment, value=None, pk=str(row.pk),
                                        direction=direction))
        value = getattr(row, self.key)  # a model field or the "name_l" annotation
        segment = 1 if value is None else 0
        return encode_cursor(
            Cursor(sort=self.sort, segment=segment, value=value, pk=str(row.pk), direction=direction)
        )

    def read(self, qs: QuerySet, cursor: Cursor | None, limit: int, backwards: bool) -> list:
        """Up to ``limit`` rows from the cursor on (one query per segment touched: at most 2)."""
        rows: list = []
        if backwards:
            segments = range(cursor.segment if cursor else self.segments - 1, -1, -1)
        else:
            segments = range(cursor.segment if cursor else 0, self.segments)
        for segment in segments:
            part = qs.filter(self.segment_q(segment))
            if cursor is not None and segment == cursor.segment:
                part = part.filter(self.beyond(cursor, backwards))
            rows.extend(self.order(part, segment, backwards)[: limit - len(rows)])
            if len(rows) >= limit:
                break
        return rows


# --- Steering the PostgreSQL planner ----------------------------------------------------------
#
# PostgreSQL cannot estimate how many rows ``UPPER(email) LIKE '%term%'`` matches: it guesses the
# same fraction for "john" (16,000 of a million) as for a name seven users have. With a guess
# like that it may count matches with a sequential scan, or look for seven rare users by walking
# the whole created-at index. So the list measures instead of guessing: the capped count runs on
# bitmap scans of the indexes (it stops after cap + 1 matches), and the count decides how the page
# is read. Few matches: fetch them all through the indexes and sort them (cheap). Many: walk the
# sort's index and filter, which meets 51 matches within a few thousand rows.


@contextmanager
def _steer(alias: str, plan: str | None):
    """Run the queries inside with ``plan`` = "bitmap" (bitmap index scans only) or "ordered"
    (walk an index in the sort's order); no-op off PostgreSQL or with ``None``."""
    if plan is None or connections[alias].vendor != "postgresql":
        yield
        return
    settings = {
        "bitmap": ("enable_seqscan", "enable_indexscan"),
        "ordered": ("enable_seqscan", "enable_bitmapscan"),
    }[plan]
    nested = connections[alias].in_atomic_block
    off = ", ".join(f"set_config('{name}', 'off', true)" for name in settings)
    with transaction.atomic(using=alias):
        with connections[alias].cursor() as cur:
            cur.execute(f"SELECT {off}")  # noqa: S608 - fixed names from the dict above
        yield
        if nested:  # inside a caller's transaction (a batch) the settings would outlive us
            on = ", ".join(f"set_config('{name}', 'on', true)" for name in settings)
            with connections[alias].cursor() as cur:
                cur.execute(f"SELECT {on}")  # noqa: S608


def _estimated_rows(alias: str) -> float | None:
    if connections[alias].vendor != "postgresql":
        return None
    with connections[alias].cursor() as cur:
        cur.execute("SELECT reltuples FROM pg_class WHERE oid = 'accounts_appuser'::regclass")
        row = cur.fetchone()
    return row[0] if row and row[0] and row[0] > 0 else None


def _capped_count(qs: QuerySet, *, filtered: bool, alias: str, table_rows: float | None = None) -> tuple[int, bool]:
    cap = policy().exact_count_cap
    if not filtered and table_rows is not None and table_rows > cap:
        # Unfiltered on PostgreSQL: the planner already knows the table holds more than the
        # cap; say "cap+" without counting anything.
        return cap + 1, False
    with _steer(alias, "bitmap" if filtered else None):
        n = qs.order_by().values("pk")[: cap + 1].count()  # COUNT(*) over a LIMIT subquery
    return n, n <= cap


def _plan_threshold(table_rows: float | None) -> int:
    n = table_rows or 0
    return max(2_000, int((51 * n) ** 0.5))


def _page_plan(count: int, table_rows: float | None) -> str:
    """Bitmap-and-sort while the matches are few; ordered index walk once they are dense.

    Fetching and sorting ``c`` matches costs about ``c`` row reads; walking the sort's index
    until 51 matches turn up costs about ``51 * N / c``. They cross near ``sqrt(51 * N)``.
    """
    return "bitmap" if count <= _plan_threshold(table_rows) else "ordered"


# What a row of the list shows (and what ``AppUser.status`` reads); the API's list rows too
# (``updated_at``: a deferred field would cost one query per row).
LIST_FIELDS = (
    "id", "email", "name", "role", "password", "email_confirmed_at", "invited_at", "banned_until",
    "ban_reason", "last_sign_in_at", "mfa_enabled", "deleted_at", "created_at", "updated_at",
)


def app_user_list(
    *, tenant: Tenant, filters: UserFilters, per_page: int = DEFAULT_PER_PAGE,
    cursor: str = "", with_total: bool = True, defer_total: bool = False,
) -> UserPage:
    """One keyset page of the users matching ``filters``, with previous/next cursors.

    ``defer_total`` (the console's page): on PostgreSQL a search counts only as far as the
    choice of plan needs (``_plan_threshold``, 2,000 to 7,000 rows, not the 10,001 of the exact
    cap); when more match, ``total`` is that lower bound, ``total_deferred`` is set, and the
    exact capped count comes after the rows, in a request of its own."""
    if per_page not in PER_PAGE_CHOICES:
        per_page = DEFAULT_PER_PAGE
    if filters.sort not in SORTS:
        filters = replace(filters, sort="-created")
    alias = tenant_db.using(tenant)
    base = app_user_filter(tenant=tenant, filters=filters)
    keyset = _Keyset(filters.sort)
    listed = base.only(*LIST_FIELDS)  # the metadata JSON is not shown: do not fetch and parse it
    listed = _with_key(listed, keyset.key)
    position = decode_cursor(cursor, sort=filters.sort)
    page = UserPage(rows=[], per_page=per_page, filters=filters)
    table_rows = _estimated_rows(alias)
    plan = None
    probe = min(_plan_threshold(table_rows), policy().exact_count_cap)
    if filters.is_filtered and table_rows is not None and defer_total:
        # Count only as far as the plan needs: at most ``probe`` + 1 matches, on bitmap scans.
        with _steer(alias, "bitmap"):
            seen = base.order_by().values("pk")[: probe + 1].count()
        plan = _page_plan(seen, table_rows)
        if seen <= probe:
            page.total, page.total_exact = seen, True
        else:
            page.total, page.total_exact, page.total_deferred = probe, False, True
    elif filters.is_filtered and table_rows is not None:
        # Count first (cheap, on bitmap scans): the count tells how to read the page.
        page.total, page.total_exact = _capped_count(
            base, filtered=True, alias=alias, table_rows=table_rows
        )
        plan = _page_plan(page.total, table_rows)

    with _steer(alias, plan):
        if position is not None and position.direction == "p":
            rows = keyset.read(listed, position, per_page + 1, backwards=True)
            more_before = len(rows) > per_page
            rows = list(reversed(rows[:per_page]))
            if rows:
                page.rows = rows
                page.prev_cursor = keyset.cursor_for(rows[0], "p") if more_before else None
                page.next_cursor = keyset.cursor_for(rows[-1], "n")
            else:
                position = None  # nothing before any more: show the first page
        if position is None or position.direction == "n":
            rows = keyset.read(listed, position, per_page + 1, backwards=False)
            page.rows = rows[:per_page]
            if len(rows) > per_page:
                page.next_cursor = keyset.cursor_for(page.rows[-1], "n")
            if position is not None and page.rows:
                page.prev_cursor = keyset.cursor_for(page.rows[0], "p")
    if with_total and plan is None:
        page.total, page.total_exact = _capped_count(
            base, filtered=filters.is_filtered, alias=alias, table_rows=table_rows
        )
    return page


def app_user_iter(*, tenant: Tenant, filters: UserFilters, chunk: int = 1000):
    """Every user matching ``filters`` in list order, read in keyset chunks (for exports)."""
    alias = tenant_db.using(tenant)
    base = app_user_filter(tenant=tenant, filters=filters)
    keyset = _Keyset(filters.sort if filters.sort in SORTS else "-created")
    listed = _with_key(base, keyset.key)
    plan = None
    table_rows = _estimated_rows(alias)
    if filters.is_filtered and table_rows is not None:
        count, _ = _capped_count(base, filtered=True, alias=alias, table_rows=table_rows)
        plan = _page_plan(count, table_rows)
    position: Cursor | None = None
    while True:
        with _steer(alias, plan):
            rows = keyset.read(listed, position, chunk, backwards=False)
        yield from rows
        if len(rows) < chunk:
            return
        position = decode_cursor(keyset.cursor_for(rows[-1], "n"), sort=keyset.sort)


def app_user_matching(*, tenant: Tenant, filters: UserFilters, fields: tuple[str, ...], limit: int,
                      lock: bool = False) -> list[AppUser]:
    """Up to ``limit`` users matching ``filters``, in no order (what a batch acts on), read
    through the indexes (bitmap scans on PostgreSQL) whatever the planner guesses."""
    alias = tenant_db.using(tenant)
    qs = app_user_filter(tenant=tenant, filters=filters).order_by()
    if lock:
        qs = qs.select_for_update()
    with _steer(alias, "bitmap" if filters.is_filtered else None):
        return light_rows(qs[:limit], fields, alias)


def light_rows(qs: QuerySet, fields: tuple[str, ...], alias: str) -> list[AppUser]:
    """``AppUser`` instances from value tuples, without ``Model.__init__``.

    A batch loads up to 10,000 users to check them one by one; building full model instances
    cost more than reading the rows. Fields not in ``fields`` load on access, as with ``only()``.
    """
    out = []
    new = AppUser.__new__
    for values in qs.values_list(*fields):
        user = new(AppUser)
        user.__dict__.update(zip(fields, values, strict=True))
        state = ModelState()
        state.db, state.adding = alias, False
        user._state = state
        out.append(user)
    return out


def app_user_matching_count(*, tenant: Tenant, filters: UserFilters, cap: int) -> int:
    """How many users match, counted up to ``cap + 1`` through the indexes."""
    alias = tenant_db.using(tenant)
    qs = app_user_filter(tenant=tenant, filters=filters)
    with _steer(alias, "bitmap" if filters.is_filtered else None):
        return qs.order_by().values("pk")[: cap + 1].count()


# --- One user and what hangs off it ------------------------------------------------------------


def app_user_get(*, tenant: Tenant, user_id: Any) -> AppUser | None:
    """The user with this id in this tenant, or ``None`` (unknown, malformed or foreign alike)."""
    pk = user_id if isinstance(user_id, uuid.UUID) else _as_uuid(str(user_id))
    if pk is None:
        return None
    return app_user_queryset(tenant=tenant).filter(pk=pk).first()


def app_user_by_email(*, tenant: Tenant, email: str) -> AppUser | None:
    return app_user_queryset(tenant=tenant).filter(email=canonical_email(email)).first()


def app_user_sessions(*, tenant: Tenant, user: AppUser, limit: int = 50) -> list[AppSession]:
    """The user's live sessions (not revoked, not expired), most recently seen first."""
    return list(
        AppSession.objects.using(tenant_db.using(tenant))
        .filter(user_id=user.pk, revoked_at__isnull=True, expires_at__gt=timezone.now())
        .order_by("-last_seen_at")[:limit]
    )


def app_user_factors(*, tenant: Tenant, user: AppUser) -> list[AppFactor]:
    return list(
        AppFactor.objects.using(tenant_db.using(tenant))
        .filter(user_id=user.pk)
        .defer("key")
        .order_by("created_at")
    )


def app_user_pending_tokens(*, tenant: Tenant, user: AppUser) -> list[ActionToken]:
    """Links that still work (purpose, created, expires). The hash is never read out."""
    return list(
        ActionToken.objects.using(tenant_db.using(tenant))
        .filter(user_id=user.pk, used_at__isnull=True, revoked_at__isnull=True,
                expires_at__gt=timezone.now())
        .only("id", "purpose", "created_at", "expires_at", "created_by", "new_email", "user_id")
        .order_by("-created_at")
    )


def app_user_history(*, tenant: Tenant, user: AppUser, limit: int = 50) -> list[AuditEntry]:
    """The audit trail of this user (served by the ``(object_pk, -timestamp)`` index)."""
    return list(
        AuditEntry.objects.filter(tenant=tenant, object_pk=str(user.pk))
        .select_related("actor")
        .order_by("-timestamp")[:limit]
    )


def invitation_list(*, tenant: Tenant, limit: int = 200) -> list[AppUser]:
    """Pending invitations: users invited and not yet accepted, newest first, each with
    ``invite_expires_at`` (the live link's expiry, or ``None`` when it expired or was revoked)."""
    live_invite = ActionToken.objects.filter(
        user_id=OuterRef("pk"), purpose=ActionToken.Purpose.INVITE, used_at__isnull=True,
        revoked_at__isnull=True, expires_at__gt=timezone.now(),
    ).order_by("-expires_at").values("expires_at")[:1]
    users: list[AppUser] = list(
        AppUser.objects.using(tenant_db.using(tenant)).filter(status_q("invited"))
        .annotate(invite_expires_at=Subquery(live_invite))
        .order_by("-created_at", "-id")[:limit]
    )
    return users


@dataclass(frozen=True)
class OffsetPage:
    """A numbered page (GoTrue's admin list): full rows, their factors, the newest invite and
    recovery link times, and the exact total."""

    users: list[AppUser]
    total: int
    factors: dict[Any, list[AppFactor]]
    link_times: dict[tuple[Any, str], datetime]


def app_user_offset_page(
    *, tenant: Tenant, page: int, per_page: int, filter: str = "", ascending: bool = False,
) -> OffsetPage:
    """Users ``created_at`` newest first (``ascending``: oldest), ties broken by id so pages never
    overlap, soft-deleted users included. The total is an exact ``COUNT(*)`` (GoTrue's clients
    compute the last page from it). Numbered pages are GoTrue's contract; the console and the
    native API page by keyset."""
    alias = tenant_db.using(tenant)
    qs = app_user_queryset(tenant=tenant)
    if filter.strip():
        qs = qs.filter(search_q(filter[:MAX_QUERY_LENGTH]))
    total = qs.count()
    order = ("created_at", "id") if ascending else ("-created_at", "-id")
    start = (page - 1) * per_page
    users = list(qs.order_by(*order)[start:start + per_page]) if start < total else []
    ids = [u.pk for u in users]
    factors: dict[Any, list[AppFactor]] = {}
    link_times: dict[tuple[Any, str], datetime] = {}
    if ids:
        for factor in AppFactor.objects.using(alias).filter(user_id__in=ids).defer("key").order_by("created_at"):
            factors.setdefault(factor.user_id, []).append(factor)
        rows = (ActionToken.objects.using(alias)
                .filter(user_id__in=ids, purpose__in=[ActionToken.Purpose.INVITE, ActionToken.Purpose.RECOVERY])
                .values_list("user_id", "purpose", "created_at"))
        for user_id, purpose, created in rows:
            key = (user_id, purpose)
            if key not in link_times or created > link_times[key]:
                link_times[key] = created
    return OffsetPage(users=users, total=total, factors=factors, link_times=link_times)
