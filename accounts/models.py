"""Two kinds of user (see ARCHITECTURE.md).

``User`` is staff and lives in the control database. ``AppUser`` and everything under it live only
in a tenant's own database: the router refuses to resolve them without an explicit tenant alias, and
their tables do not exist in the control database.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.db import models
from django.db.models.functions import Lower, Upper
from django.utils import timezone

from core.emails import canonical_email
from tenants.models import TenantModel

# A ban "indefinitely" is a ban until the end of the calendar: one column answers "is banned now".
BANNED_FOREVER = datetime(9999, 12, 31, tzinfo=UTC)


class StaffUserQuerySet(models.QuerySet["User"]):
    """``update`` (and ``bulk_update``, which calls it) sends no signal: the rows it changes get
    a new generation here, so no cached snapshot of them survives (``accounts.identity``)."""

    def update(self, **kwargs: Any) -> int:
        from accounts import identity

        pks = list(self.values_list("pk", flat=True))  # before: the filter may not match after
        identity.bump(*pks, after_commit=False)  # a cache refusing it refuses the update
        count = super().update(**kwargs)
        identity.bump(*pks)
        return count


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def get_queryset(self) -> StaffUserQuerySet:
        return StaffUserQuerySet(self.model, using=self._db)

    def _create(self, email: str, password: str | None, **extra: Any) -> User:
        email = canonical_email(email)
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=email, **extra)
        user.set_password(password)  # None gives an unusable password
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.setdefault("is_superuser", False)
        return self._create(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra["is_superuser"] = True
        return self._create(email, password, **extra)

    def get_by_natural_key(self, username: str | None) -> User:
        # Stored in the canonical form (core.emails), looked up by exact match on it.
        return self.get(email=canonical_email(username))


class User(AbstractBaseUser, PermissionsMixin):
    """A staff member of the console ("dashboard user"). Instance admin = ``is_superuser``."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(max_length=254, unique=True)
    name = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(default=True)
    time_zone = models.CharField(max_length=64, blank=True)  # IANA name; "" = the browser's
    hidden_user_columns = models.CharField(max_length=200, blank=True)  # users list, comma-separated
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["name"]

    class Meta:
        ordering = ["email"]
        # ``email`` holds the canonical form only (core.emails): its unique index is the one
        # uniqueness rule, the same on every database (no LOWER()/UPPER() case rules).

    def __str__(self) -> str:
        return self.email

    @property
    def is_staff(self) -> bool:
        # The Django admin is for instance admins only.
        return self.is_active and self.is_superuser

    def get_session_auth_hash(self) -> str:
        # A user rebuilt from the staff snapshot (accounts.identity) has no password hash loaded:
        # the snapshot's session hash stands for it until the hash itself is read.
        cached = self.__dict__.get("_session_auth_hash")
        if cached is not None and "password" not in self.__dict__:
            return cached
        return super().get_session_auth_hash()

    def get_full_name(self) -> str:
        return self.name or self.email

    def get_short_name(self) -> str:
        return self.name or self.email


class StaffInvitation(models.Model):
    """An emailed link through which an invited staff member sets their password.

    Only the token's SHA-256 is stored. Single use (row lock at redemption), expires after
    ``policy().invitation_hours``; a newer invitation of the same user revokes the older ones.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="staff_invitations")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        indexes = [models.Index(fields=["user", "-created_at"], name="staffinvite_user")]

    def __str__(self) -> str:
        return f"invitation of {self.user_id}"

    @property
    def is_pending(self) -> bool:
        return self.used_at is None and self.revoked_at is None and self.expires_at > timezone.now()


class SetupLock(models.Model):
    """One row, written by first-run setup: its primary key makes "exactly one setup wins"
    a database guarantee, whatever the number of concurrent requests or workers."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    completed_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return "first-run setup"


# --- Tenant side ---------------------------------------------------------------------------


class AppUser(TenantModel):
    """An end user of one tenant's application. Lives in that tenant's database only."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.CharField(max_length=254)
    name = models.CharField(max_length=150, blank=True)
    role = models.CharField(max_length=50, default="user")
    password = models.CharField(max_length=255, blank=True)  # a Django hash; "" = none set
    password_changed_at = models.DateTimeField(null=True, blank=True)
    email_confirmed_at = models.DateTimeField(null=True, blank=True)
    invited_at = models.DateTimeField(null=True, blank=True)
    invited_by = models.UUIDField(null=True, blank=True)  # staff id; no cross-database FK
    banned_until = models.DateTimeField(null=True, blank=True)
    ban_reason = models.CharField(max_length=500, blank=True)
    last_sign_in_at = models.DateTimeField(null=True, blank=True)
    mfa_enabled = models.BooleanField(default=False)  # kept by the factor services, for filters
    deleted_at = models.DateTimeField(null=True, blank=True)
    user_metadata = models.JSONField(default=dict, blank=True)
    app_metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            # The canonical form only (core.emails): one address, one user, on every database.
            # An expression (not ``fields``) so SQLite adds the index instead of rebuilding the table.
            models.UniqueConstraint(models.F("email"), name="appuser_email_unique"),
        ]
        indexes = [
            # Keyset pagination orders (newest first is the default list order).
            models.Index(fields=["-created_at", "-id"], name="appuser_created_keyset"),
            models.Index(fields=["-last_sign_in_at", "-id"], name="appuser_signin_keyset"),
            models.Index(Lower("name"), "id", name="appuser_name_keyset"),
            models.Index("role", "id", name="appuser_role_keyset"),
            models.Index(fields=["role", "-created_at", "-id"], name="appuser_role_created"),
            models.Index(
                fields=["deleted_at"],
                name="appuser_deleted",
                condition=models.Q(deleted_at__isnull=False),
            ),
            models.Index(
                fields=["-created_at", "-id"],
                name="appuser_unconfirmed",
                condition=models.Q(email_confirmed_at__isnull=True),
            ),
            models.Index(
                fields=["-created_at", "-id"],
                name="appuser_mfa",
                condition=models.Q(mfa_enabled=True),
            ),
            # Substring search on PostgreSQL: Django's icontains is UPPER(col::text) LIKE UPPER(q),
            # so the trigram indexes are on UPPER(col). Created on PostgreSQL only (see migration).
            GinIndex(OpClass(Upper("email"), name="gin_trgm_ops"), name="appuser_email_trgm"),
            GinIndex(OpClass(Upper("name"), name="gin_trgm_ops"), name="appuser_name_trgm"),
        ]

    def __str__(self) -> str:
        return self.email

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    @property
    def is_banned(self) -> bool:
        return self.banned_until is not None and self.banned_until > timezone.now()

    @property
    def is_banned_forever(self) -> bool:
        return self.banned_until is not None and self.banned_until >= BANNED_FOREVER

    @property
    def status(self) -> str:
        return self.status_at(timezone.now())

    def status_at(self, now: datetime) -> str:
        """The status at ``now`` (a ban runs out: the list's status sort reads it at one instant)."""
        if self.deleted_at is not None:
            return "deleted"
        if self.banned_until is not None and self.banned_until > now:
            return "banned"
        if self.email_confirmed_at is None:
            return "invited" if self.invited_at is not None and not self.password else "unconfirmed"
        return "active"


class AppUserBan(TenantModel):
    """One row per user whose ``banned_until`` is set, kept by the database's triggers
    (``accounts.ban_table``), never written by the application. It carries the index the banned
    filter, count and sort segment read, so that no index of ``accounts_appuser`` names
    ``banned_until`` and a ban is a HOT update of the user row. ``AppUser.banned_until`` stays
    the truth: a ban runs out with time, so "banned" is ``banned_until > now`` here too."""

    user = models.OneToOneField(
        AppUser, primary_key=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="ban_row"
    )
    banned_until = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["banned_until"], name="appuserban_until")]

    def __str__(self) -> str:
        return f"{self.user_id} until {self.banned_until:%Y-%m-%d %H:%M}"


class AppSession(TenantModel):
    """A signed-in session of an app user in the tenant portal; revocable one by one."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(AppUser, on_delete=models.CASCADE, related_name="sessions")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    aal = models.CharField(max_length=4, default="aal1")  # aal2 once a factor was verified
    impersonator_id = models.UUIDField(null=True, blank=True)  # staff id when impersonating
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["user", "-last_seen_at"], name="appsession_user"),
            # The dashboard counts sign-ins per day from session creation over 30/90 days.
            models.Index(fields=["created_at"], name="appsession_created"),
        ]

    def __str__(self) -> str:
        return f"session {self.id} of {self.user_id}"


class AppFactor(TenantModel):
    """A TOTP factor of an app user (the key is used with ``django_otp.oath.TOTP``)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(AppUser, on_delete=models.CASCADE, related_name="factors")
    kind = models.CharField(max_length=20, default="totp")
    friendly_name = models.CharField(max_length=100, blank=True)
    key = models.CharField(max_length=80)  # hex secret
    digits = models.PositiveSmallIntegerField(default=6)
    step = models.PositiveSmallIntegerField(default=30)
    drift = models.SmallIntegerField(default=0)
    last_t = models.BigIntegerField(default=-1)  # a code is accepted once
    throttling_failure_timestamp = models.DateTimeField(null=True, blank=True)
    throttling_failure_count = models.PositiveIntegerField(default=0)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.friendly_name or f"{self.kind} factor"


class AppRecoveryCode(TenantModel):
    """A single-use recovery code of an app user's factor, stored hashed."""

    id = models.BigAutoField(primary_key=True)
    factor = models.ForeignKey(AppFactor, on_delete=models.CASCADE, related_name="recovery_codes")
    code_hash = models.CharField(max_length=64)
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"recovery code {self.id}"


class ActionToken(TenantModel):
    """A single-use link token (invitation, recovery, magic link, email change), stored hashed."""

    class Purpose(models.TextChoices):
        INVITE = "invite", "Invitation"
        RECOVERY = "recovery", "Password recovery"
        MAGIC_LINK = "magic_link", "Magic link"
        EMAIL_CHANGE = "email_change", "Email change"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(AppUser, on_delete=models.CASCADE, related_name="tokens")
    purpose = models.CharField(max_length=20, choices=Purpose.choices)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_by = models.UUIDField(null=True, blank=True)  # staff id, when an admin issued it
    new_email = models.CharField(max_length=254, blank=True)  # for email_change only

    class Meta:
        indexes = [
            models.Index(fields=["user", "purpose", "-created_at"], name="actiontoken_user"),
        ]

    def __str__(self) -> str:
        return f"{self.purpose} token {self.id}"


# --- Background jobs (issue 13): a job's frozen targets and their outcomes, in the tenant DB ---


class JobTarget(TenantModel):
    """One target of a batch job (``batchjobs.Job``, in the control database: no foreign key),
    frozen at the preview: users created or changed afterwards are not swept in. ``seq`` numbers
    the targets 1..N; chunks are ranges of it. A target the preview already skips carries why."""

    id = models.BigAutoField(primary_key=True)
    job_id = models.UUIDField()
    seq = models.PositiveIntegerField()
    user_id = models.UUIDField(null=True, blank=True)  # none yet for a row of an import
    email = models.CharField(max_length=254, blank=True)
    name = models.CharField(max_length=150, blank=True)  # import rows
    role = models.CharField(max_length=50, blank=True)  # import rows
    line = models.PositiveIntegerField(null=True, blank=True)  # import rows: the line in the file
    # Decided at the preview: "skipped" or "error" (import rows), with a code and the reason.
    skip_result = models.CharField(max_length=10, blank=True)
    skip_code = models.CharField(max_length=40, blank=True)
    skip_reason = models.CharField(max_length=300, blank=True)
    # Undo jobs: the state to restore, and the user's updated_at as the undone job left it (a
    # user changed since is skipped).
    restore = models.JSONField(null=True, blank=True)
    expected_updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job_id", "seq"], name="jobtarget_unique")]

    def __str__(self) -> str:
        return f"target {self.seq} of job {self.job_id}"


class JobOutcome(TenantModel):
    """What a job did to one target, written in the same transaction as the change itself: its
    existence is the proof that the target was processed (unique per job and target), so a
    worker that resumes after a crash never applies a change twice."""

    class Result(models.TextChoices):
        DONE = "done", "Done"
        SKIPPED = "skipped", "Skipped"
        ERROR = "error", "Error"

    id = models.BigAutoField(primary_key=True)
    job_id = models.UUIDField()
    seq = models.PositiveIntegerField()
    user_id = models.UUIDField(null=True, blank=True)
    email = models.CharField(max_length=254, blank=True)
    result = models.CharField(max_length=10, choices=Result.choices)
    code = models.CharField(max_length=40, blank=True)
    reason = models.CharField(max_length=300, blank=True)
    # The user's audited fields before the change (the audit diff, and what an undo restores) and
    # the updated_at the change left.
    before = models.JSONField(null=True, blank=True)
    after_updated_at = models.DateTimeField(null=True, blank=True)
    # A link's raw token, from the transaction that stored its hash until the mail carrying it is
    # in the outbox (then blanked): so a resumed job mails the very token that was issued.
    payload = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job_id", "seq"], name="joboutcome_unique")]
        indexes = [models.Index(fields=["job_id", "result", "seq"], name="joboutcome_result")]

    def __str__(self) -> str:
        return f"{self.result} for target {self.seq} of job {self.job_id}"
