"""Reads on accounts. Staff part: setup state, staff lists, tenant memberships."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.db.models import Case, Exists, OuterRef, Prefetch, Q, QuerySet, Value, When
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.app_users.figures import ListedTenant, listed
from accounts.models import StaffInvitation, User
from audit.models import AuditEntry
from core.emails import EMAIL_MAX_LENGTH, canonical_email
from core.text import search_term
from tenants.models import Tenant, TenantAdmin

# --- Staff -----------------------------------------------------------------------------------


def staff_setup_required() -> bool:
    """First-run setup is pending while no staff user exists at all."""
    return not User.objects.exists()


def _with_flags(qs: QuerySet[User]) -> QuerySet[User]:
    """Each member's ``status`` (``active``, ``invited``: no password yet, ``deactivated``),
    whether they have an authenticator and a pending invitation."""
    now = timezone.now()
    return qs.annotate(
        status=Case(
            When(is_active=False, then=Value("deactivated")),
            When(password__startswith=UNUSABLE_PASSWORD_PREFIX, then=Value("invited")),
            default=Value("active"),
        ),
        has_totp=Exists(TOTPDevice.objects.filter(user=OuterRef("pk"), confirmed=True)),
        has_pending_invitation=Exists(
            StaffInvitation.objects.filter(
                user=OuterRef("pk"), used_at=None, revoked_at=None, expires_at__gt=now
            )
        ),
    )


def staff_list(*, query: str = "") -> QuerySet[User]:
    """Every staff member with their tenant roles (for instance admins)."""
    qs = _with_flags(User.objects.all()).prefetch_related(
        Prefetch(
            "tenant_roles",
            queryset=TenantAdmin.objects.select_related("tenant").order_by("tenant__slug"),
        )
    )
    query = search_term(query, max_length=EMAIL_MAX_LENGTH)
    if query:
        qs = qs.filter(Q(email__icontains=query) | Q(name__icontains=query))
    return qs.order_by("email")


def staff_by_email(*, email: str) -> User | None:
    """The staff member with this address (any spelling of it, ``core.emails``), or ``None``."""
    canonical = canonical_email(email)
    return User.objects.filter(email=canonical).first() if canonical else None


def staff_get(*, pk: uuid.UUID | str) -> User | None:
    try:
        return _with_flags(User.objects.filter(pk=pk)).first()
    except (ValueError, TypeError):
        return None


def staff_roles(*, user: User) -> QuerySet[TenantAdmin]:
    return (
        TenantAdmin.objects.filter(user=user).select_related("tenant").order_by("tenant__slug")
    )


def assignable_tenants(*, exclude_user: User | None = None) -> QuerySet[Tenant]:
    qs = Tenant.objects.filter(status__in=Tenant.VISIBLE_STATUSES).order_by("-is_default", "slug")
    if exclude_user is not None:
        qs = qs.exclude(admins__user=exclude_user)
    return qs


def tenant_admin_list(*, tenant: Tenant) -> QuerySet[TenantAdmin]:
    """The staff assigned to one tenant, admins first."""
    return (
        TenantAdmin.objects.filter(tenant=tenant)
        .select_related("user")
        .annotate(
            has_totp=Exists(TOTPDevice.objects.filter(user=OuterRef("user_id"), confirmed=True))
        )
        .order_by("role", "user__email")
    )


def tenant_admin_get(*, tenant: Tenant, user_pk: uuid.UUID | str) -> TenantAdmin | None:
    try:
        return TenantAdmin.objects.select_related("user").filter(tenant=tenant, user_id=user_pk).first()
    except (ValueError, TypeError):
        return None


# --- The console home ------------------------------------------------------------------------


@dataclass(frozen=True)
class Membership:
    tenant: Tenant
    role: str


@dataclass(frozen=True)
class ListedMembership:
    """A row of a page of memberships: the tenant as listed (``figures.ListedTenant``), my role."""

    tenant: ListedTenant
    role: str


def tenant_memberships(*, actor: User) -> list[Membership]:
    """The tenants the actor can reach, with their role in each (instance admins: all, admin)."""
    if actor.is_superuser:
        tenants = Tenant.objects.filter(status__in=Tenant.VISIBLE_STATUSES)
        return [Membership(t, "admin") for t in tenants.order_by("-is_default", "name")]
    rows = (
        TenantAdmin.objects.filter(user=actor, tenant__status__in=Tenant.VISIBLE_STATUSES)
        .select_related("tenant")
        .order_by("-tenant__is_default", "tenant__name")
    )
    return [Membership(r.tenant, r.role) for r in rows]


def _reachable(actor: User, query: str) -> QuerySet[Tenant]:
    """The tenants the actor can reach whose slug or name contains ``query`` (a search_term)."""
    tenants = Tenant.objects.filter(status__in=Tenant.VISIBLE_STATUSES)
    if not actor.is_superuser:
        tenants = tenants.filter(admins__user=actor)
    if query:
        tenants = tenants.filter(Q(slug__icontains=query) | Q(name__icontains=query))
    return tenants


@dataclass(frozen=True)
class MembershipPage:
    """One page of ``tenant_memberships_page``: the rows, how many match, where we are."""

    rows: list[ListedMembership]
    total: int
    page: int
    pages: int
    query: str

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def has_previous(self) -> bool:
        return self.page > 1


def tenant_memberships_page(
    *, actor: User, query: str = "", page: int = 1, per_page: int = 25, with_figures: bool = False
) -> MembershipPage:
    """A page of the tenants the actor can reach (name or slug containing ``query``), default
    tenant first, then by name, with the actor's role in each (``ListedTenant`` rows);
    ``with_figures`` joins their stored figures (``tenants.TenantFigures``). Two
    control-database queries, whatever the number of tenants; an out-of-range page gives the
    last one."""
    query = search_term(query)
    tenants = _reachable(actor, query)
    total = tenants.count()
    pages = max((total + per_page - 1) // per_page, 1)
    page = min(max(page, 1), pages)
    ordered = tenants.order_by("-is_default", "name", "slug")
    start, stop = (page - 1) * per_page, page * per_page
    if actor.is_superuser:
        rows = [ListedMembership(t, "admin") for t in listed(ordered, start=start, stop=stop, figures=with_figures)]
    else:
        role = TenantAdmin.objects.filter(user=actor, tenant=OuterRef("pk")).values("role")[:1]
        chunk = listed(ordered.annotate(member_role=role), start=start, stop=stop, figures=with_figures,
                       extra=("member_role",))
        rows = [ListedMembership(t, (t.extra or {})["member_role"]) for t in chunk]
    return MembershipPage(rows, total, page, pages, query)


def tenant_search(*, actor: User, query: str, limit: int = 10) -> list[ListedMembership]:
    """The header's tenant switcher: up to ``limit`` reachable tenants matching ``query``."""
    return tenant_memberships_page(actor=actor, query=query, per_page=limit).rows


def recent_activity(*, actor: User, limit: int = 8) -> list[AuditEntry]:
    """The actor's own latest audit entries (what they did, and their sign-ins)."""
    return list(
        AuditEntry.objects.filter(actor=actor)
        .select_related("tenant")
        .order_by("-timestamp", "-id")[:limit]
    )
