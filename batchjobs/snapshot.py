"""The frozen target list of a job, written into the tenant's database at the preview.

"All N matching" is copied by one ``INSERT ... SELECT`` (the filter's own query, numbered with
``ROW_NUMBER()`` in list order, each row's skip reason computed by a ``CASE`` of the skip rules):
a million users never pass through Python. Explicit ids (a page of checked rows, an API call) are
read in chunks and checked with the same rules in Python.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connections, transaction
from django.db.models import Case, CharField, F, QuerySet, Value, When, Window
from django.db.models.functions import RowNumber

from accounts.app_users import job_actions
from accounts.models import AppUser, JobOutcome, JobTarget
from batchjobs.models import Job

CHUNK = 900  # ids per statement: under SQLite's 999-parameter limit


def _job_param(job: Job, alias: str) -> Any:
    return JobTarget._meta.get_field("job_id").get_db_prep_value(job.pk, connections[alias])


def from_queryset(job: Job, alias: str, queryset: QuerySet[AppUser], rules: Sequence[job_actions.Rule],
                  *, limit: int) -> int:
    """Copy at most ``limit`` users of ``queryset`` into the job's targets. Returns how many."""
    text: CharField[str, str] = CharField()
    code = Case(*[When(r.q, then=Value(r.code)) for r in rules], default=Value(""), output_field=text)
    reason = Case(*[When(r.q, then=Value(r.reason)) for r in rules], default=Value(""), output_field=text)
    rows = (
        queryset.order_by()
        .annotate(snap_seq=Window(RowNumber(), order_by=[F("created_at").asc(), F("id").asc()]),
                  snap_code=code, snap_reason=reason)
        .values_list("id", "email", "name", "snap_code", "snap_reason", "snap_seq")[:limit]
    )
    select, params = rows.query.get_compiler(using=alias).as_sql()
    connection = connections[alias]
    qn = connection.ops.quote_name
    columns = ", ".join(qn(c) for c in ("job_id", "seq", "user_id", "email", "name", "role", "skip_result",
                                         "skip_code", "skip_reason"))
    sql = (
        f"INSERT INTO {qn(JobTarget._meta.db_table)} ({columns}) "  # noqa: S608 - names, not input
        f"SELECT %s, s.{qn('snap_seq')}, s.{qn('id')}, s.{qn('email')}, s.{qn('name')}, '', "
        f"CASE WHEN s.{qn('snap_code')} = '' THEN '' ELSE 'skipped' END, "
        f"s.{qn('snap_code')}, s.{qn('snap_reason')} FROM ({select}) s"
    )
    with transaction.atomic(using=alias), connection.cursor() as cursor:
        cursor.execute(sql, [_job_param(job, alias), *params])
        return cursor.rowcount


def from_ids(job: Job, alias: str, ids: Iterable[Any], rules: Sequence[job_actions.Rule], *, limit: int) -> int:
    """The users with these ids (unknown ones are left out), in list order. Returns how many."""
    valid: list[uuid.UUID] = []
    for raw in dict.fromkeys(str(i) for i in ids):
        try:
            valid.append(uuid.UUID(raw))
        except ValueError:
            continue
    found: list[AppUser] = []
    for start in range(0, len(valid), CHUNK):
        found.extend(job_actions.load_plain(alias, valid[start:start + CHUNK]))
    found.sort(key=lambda u: (u.created_at, str(u.pk)))
    targets = []
    for seq, user in enumerate(found[:limit], start=1):
        rule = next((r for r in rules if r.applies(user)), None)
        targets.append(JobTarget(
            job_id=job.pk, seq=seq, user_id=user.pk, email=user.email, name=user.name,
            skip_result="skipped" if rule else "", skip_code=rule.code if rule else "",
            skip_reason=rule.reason if rule else "",
        ))
    with transaction.atomic(using=alias):
        JobTarget.objects.using(alias).bulk_create(targets, batch_size=500)
    return len(found)


def from_outcomes(job: Job, alias: str, undone: Job) -> int:
    """The targets of an undo: every user the undone job changed, with the state to restore
    (its ``before``) and the ``updated_at`` it left (a user changed since is skipped)."""
    connection = connections[alias]
    qn = connection.ops.quote_name
    columns = ", ".join(qn(c) for c in ("job_id", "seq", "user_id", "email", "name", "role", "skip_result",
                                         "skip_code", "skip_reason", "restore", "expected_updated_at"))
    sql = (
        f"INSERT INTO {qn(JobTarget._meta.db_table)} ({columns}) "  # noqa: S608 - names, not input
        f"SELECT %s, ROW_NUMBER() OVER (ORDER BY {qn('seq')}), {qn('user_id')}, {qn('email')}, '', '', '', '', '', "
        f"{qn('before')}, {qn('after_updated_at')} FROM {qn(JobOutcome._meta.db_table)} "
        f"WHERE {qn('job_id')} = %s AND {qn('result')} = %s"
    )
    with transaction.atomic(using=alias), connection.cursor() as cursor:
        cursor.execute(sql, [_job_param(job, alias), _job_param(undone, alias), JobOutcome.Result.DONE])
        return cursor.rowcount


def discard(job: Job, alias: str) -> None:
    """Drop a job's targets (a preview never started, or refused): one statement, any size."""
    connection = connections[alias]
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {qn(JobTarget._meta.db_table)} WHERE {qn('job_id')} = %s",  # noqa: S608
            [_job_param(job, alias)],
        )
