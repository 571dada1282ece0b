"""A job's state, in the control database: the job, its chunks, and (for instance-wide jobs) its
items. The targets of a tenant's job and their outcomes live in that tenant's database
(``accounts.models.JobTarget`` / ``JobOutcome``), next to the users they change.

The runner (django-tasks-db) only wakes workers; everything a worker needs to resume after a
crash is here: which chunks are done (``JobChunk.state``), who holds the others and until when
(``claimed_by``, ``lease_until``), and the job's exact counters.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone


class Job(models.Model):
    class Kind(models.TextChoices):
        USERS = "users", "Batch action on users"
        UNDO = "undo", "Undo of a batch job"
        IMPORT = "import", "CSV import"
        MIGRATE = "migrate", "Migrate every tenant"

    class State(models.TextChoices):
        PREVIEW = "preview", "Preview"
        SCHEDULED = "scheduled", "Scheduled"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        CANCELLING = "cancelling", "Cancelling"
        DONE = "done", "Done"
        CANCELLED = "cancelled", "Cancelled"
        FAILED = "failed", "Failed"
        EXPIRED = "expired", "Expired"

    FINISHED = frozenset({State.DONE, State.CANCELLED, State.FAILED, State.EXPIRED})
    ACTIVE = frozenset({State.QUEUED, State.RUNNING, State.CANCELLING})

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # None for instance-wide work (migrate --all).
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, null=True, blank=True,
                               related_name="+")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    action = models.CharField(max_length=40)  # ban, unban, ..., invite, migrate, undo
    options = models.JSONField(default=dict, blank=True)  # until, reason, role, sign_out, hard, ...
    selection = models.JSONField(default=dict, blank=True)  # what was selected (ids count or filter)
    state = models.CharField(max_length=20, choices=State.choices, default=State.PREVIEW)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                              related_name="+")
    actor_email = models.CharField(max_length=254, blank=True)
    # A service key's job (the API): no staff actor; the key acts, with its role, while it is live.
    api_key = models.ForeignKey("credentials.ApiKey", on_delete=models.SET_NULL, null=True, blank=True,
                                related_name="+")
    undo_of = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="undos")
    # The request that made the preview: its address and correlation id go on every audit entry
    # the job writes, its host into links mailed in development.
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    cid = models.CharField(max_length=64, blank=True)
    base_url = models.CharField(max_length=300, blank=True)

    created_at = models.DateTimeField(default=timezone.now)  # the snapshot's time
    scheduled_for = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True,
                                     blank=True, related_name="+")
    heartbeat_at = models.DateTimeField(null=True, blank=True)  # the last chunk claimed or done

    # The frozen preview: targets in the snapshot, how many the preview already skips and why.
    total = models.PositiveIntegerField(default=0)
    preview_skipped = models.PositiveIntegerField(default=0)
    skip_reasons = models.JSONField(default=dict, blank=True)  # {reason: count}
    chunk_size = models.PositiveIntegerField(default=1000)
    chunks_total = models.PositiveIntegerField(default=0)

    # Exact counters, moved in the same transaction as each chunk's audit entries and mails.
    processed = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="job_tenant_created"),
            models.Index(fields=["state", "created_at"], name="job_state"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.action} job {self.pk}"

    @property
    def by(self) -> Any:
        """Who acts in the job: the staff member, or the service key (as its API actor), or
        ``None`` (the command line, or an actor since deleted)."""
        if self.actor_id is not None:
            return self.actor
        if self.api_key is not None:
            return self.api_key.as_actor()
        return None

    @property
    def is_finished(self) -> bool:
        return self.state in self.FINISHED

    @property
    def done_count(self) -> int:
        return self.processed + self.skipped + self.errors


class JobChunk(models.Model):
    """A slice of a job's targets (``first_seq``..``last_seq``): claimed by one worker at a time
    (row lock, ``SKIP LOCKED`` on PostgreSQL), done once."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        CLAIMED = "claimed", "Claimed"
        DONE = "done", "Done"

    id = models.BigAutoField(primary_key=True)
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="chunks")
    no = models.PositiveIntegerField()
    first_seq = models.PositiveIntegerField()
    last_seq = models.PositiveIntegerField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    claimed_by = models.CharField(max_length=64, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    done_at = models.DateTimeField(null=True, blank=True)
    done_by = models.CharField(max_length=64, blank=True)
    processed = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "no"], name="jobchunk_unique")]
        indexes = [models.Index(fields=["job", "state", "no"], name="jobchunk_claim")]

    def __str__(self) -> str:
        return f"chunk {self.no} of {self.job_id}"


class JobItem(models.Model):
    """A target of an instance-wide job (a tenant of migrate --all) and its outcome."""

    id = models.BigAutoField(primary_key=True)
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="items")
    seq = models.PositiveIntegerField()
    label = models.CharField(max_length=200)
    ref = models.CharField(max_length=64, blank=True)  # the tenant's id
    result = models.CharField(max_length=10, blank=True)  # "", done, skipped, error
    reason = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "seq"], name="jobitem_unique")]

    def __str__(self) -> str:
        return f"{self.label} in {self.job_id}"
