from __future__ import annotations

import re
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from core.access import TenantRole

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")
SLUG_MAX_LENGTH = 40
# Path segments of the console and portal that a slug must not shadow, plus the obvious lies.
RESERVED_SLUGS = frozenset({"admin", "api", "static", "media", "setup", "login", "logout", "new"})


def validate_slug(value: str) -> None:
    """Slugs are immutable, lower-case ``[a-z0-9-]``, 1-40 characters, no leading/trailing dash."""
    if not isinstance(value, str) or not value:
        raise ValidationError("Enter a slug.", code="required")
    if len(value) > SLUG_MAX_LENGTH:
        raise ValidationError(
            f"A slug has at most {SLUG_MAX_LENGTH} characters (this one has {len(value)}).",
            code="max_length",
        )
    if not SLUG_RE.match(value):
        raise ValidationError(
            "A slug uses only lower-case letters, digits and dashes, and starts and ends with a "
            "letter or digit.",
            code="invalid",
        )
    if "--" in value:
        raise ValidationError("A slug cannot contain two dashes in a row.", code="invalid")
    if value in RESERVED_SLUGS:
        raise ValidationError(f"'{value}' is reserved; choose another slug.", code="reserved")


class TenantModel(models.Model):
    """Base of the models that live in tenant databases only (``tenants.router`` keys on it):
    queried without ``.using(tenants.db.using(tenant))`` they raise, never fall back."""

    lives_in_tenant_database = True

    class Meta:
        abstract = True


class Tenant(models.Model):
    class Status(models.TextChoices):
        PROVISIONING = "provisioning", "Provisioning"
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"
        DELETED = "deleted", "Deleted"
        PURGED = "purged", "Purged"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    slug = models.CharField(max_length=SLUG_MAX_LENGTH, unique=True, validators=[validate_slug])
    name = models.CharField(max_length=200)
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.PROVISIONING, db_index=True
    )
    is_default = models.BooleanField(default=False)
    # Placement: the key of a server in TENANT_DATABASE_SERVERS ("default" = the control server)
    # and the database name there (with SQLite, the file name in TENANT_SQLITE_DIR).
    db_server = models.CharField(max_length=50, default="default")
    db_name = models.CharField(max_length=63, unique=True)
    # The last migration applied to the tenant database, per app ("accounts": "0001_initial").
    schema_version = models.JSONField(default=dict, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # Per-tenant rules (tenants.config.TenantSettings) and mail templates overrides.
    settings = models.JSONField(default=dict, blank=True)
    email_templates = models.JSONField(default=dict, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    suspended_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    purged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"],
                condition=models.Q(is_default=True),
                name="tenants_one_default",
            ),
        ]
        # The pages that list tenants read a page in order from these, not a sort of the table
        # (the console home and the switcher: reachable ones by name; /tenants/: all but purged).
        indexes = [
            models.Index(fields=["-is_default", "name", "slug"], name="tenant_home_order",
                         condition=models.Q(status__in=["active", "suspended"])),
            models.Index(fields=["-is_default", "slug"], name="tenant_list_order",
                         condition=~models.Q(status="purged")),
        ]

    # Tenants whose database staff may work in (a suspended tenant's portal is closed).
    VISIBLE_STATUSES = (Status.ACTIVE, Status.SUSPENDED)

    def __str__(self) -> str:
        return self.slug

    @property
    def is_usable(self) -> bool:
        """The tenant database exists and staff may work in it (suspended: yes, read and write)."""
        return self.status in {self.Status.ACTIVE, self.Status.SUSPENDED}

    @property
    def accepts_app_users(self) -> bool:
        return self.status == self.Status.ACTIVE

    def get_additional_data(self) -> dict:
        return {"tenant": self.slug}


class TenantAdmin(models.Model):
    """Assignment of a staff user to a tenant with a role."""

    Role = TenantRole

    id = models.BigAutoField(primary_key=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tenant_roles"
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="admins")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "tenant"], name="tenantadmin_unique"),
        ]
        indexes = [models.Index(fields=["tenant", "role"], name="tenantadmin_tenant_role")]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} of {self.tenant}"

    def get_additional_data(self) -> dict:
        return {"tenant": self.tenant.slug}


class TenantAdminInvite(models.Model):
    """A role in a tenant offered to a staff member, who accepts (or declines) it on the console's
    home page. A tenant admin adding staff never attaches anyone and, since new and existing
    addresses both get one of these, never learns which staff emails exist (issue 11, finding 6).
    At most one pending offer per member and tenant; it expires after ``policy().invitation_hours``.
    """

    Role = TenantRole

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="admin_invites")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tenant_invites")
    role = models.CharField(max_length=20, choices=Role.choices)
    name = models.CharField(max_length=150, blank=True)  # what the inviter typed; shown to them
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)  # declined, withdrawn or replaced

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "user"], name="tenantadmininvite_one_pending",
                condition=models.Q(accepted_at__isnull=True, revoked_at__isnull=True),
            ),
        ]
        indexes = [models.Index(fields=["user", "-created_at"], name="tenantadmininvite_user")]

    def __str__(self) -> str:
        return f"{self.role} of {self.tenant_id} offered to {self.user_id}"

    @property
    def is_pending(self) -> bool:
        return self.accepted_at is None and self.revoked_at is None and self.expires_at > timezone.now()


class TenantFigures(models.Model):
    """A tenant's user figures, kept in the control database so that the instance pages (home,
    ``/tenants/``) never open a tenant database: written by ``accounts.app_users.figures``
    (on the job runner after each audited change, and by a periodic sweep), read by everyone.

    Counts are exact up to the policy's cap; ``kinds`` names the ones that are not
    (``{"users": "approximate"}``: the planner's estimate, ``"capped"``: at least the value).
    ``dirty_at`` is set by the first change since the last refresh (later ones find it set and
    queue nothing more); ``error`` says why the last refresh could not count (database down)."""

    tenant = models.OneToOneField(
        Tenant, primary_key=True, on_delete=models.CASCADE, related_name="figures"
    )
    users = models.BigIntegerField(null=True)
    active_7 = models.BigIntegerField(null=True)
    active_30 = models.BigIntegerField(null=True)
    banned = models.BigIntegerField(null=True)
    invited = models.BigIntegerField(null=True)
    mfa = models.BigIntegerField(null=True)
    kinds = models.JSONField(default=dict, blank=True)
    error = models.CharField(max_length=200, blank=True)
    refreshed_at = models.DateTimeField(null=True, blank=True)
    dirty_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["refreshed_at"], name="tenantfigures_refreshed")]

    def __str__(self) -> str:
        return f"figures of {self.tenant_id}"
