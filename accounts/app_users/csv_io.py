"""CSV export of the list (streamed, keyset chunks, safe against formula injection) and CSV
import of invitations (parse → preview with per-row errors → confirm; idempotent by email)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from django.core import signing
from django.core.files import File

from accounts.app_users.batches import BatchResult, InviteRow, app_users_invite_many, invite_rows_check
from accounts.app_users.selectors import UserFilters, app_user_iter
from accounts.app_users.services import audited_refusals, role_refused
from accounts.models import AppUser
from audit import services as audit
from core.access import role_can
from core.csv_safety import safe_cell
from core.errors import Invalid
from core.policy import policy
from tenants.access import actor_role
from tenants.models import Tenant

EXPORT_COLUMNS = (
    "id", "email", "name", "role", "status", "mfa_enabled", "email_confirmed_at", "invited_at",
    "banned_until", "ban_reason", "last_sign_in_at", "created_at", "deleted_at",
)
IMPORT_MAX_BYTES = 5 * 1024 * 1024
IMPORT_JOB_MAX_BYTES = 64 * 1024 * 1024  # an import run as a job (the console's): 100,000 rows and more
IMPORT_SALT = "adminpanel.users.import"
IMPORT_MAX_AGE = 3600
TOO_LARGE = f"The file is larger than {IMPORT_MAX_BYTES // (1024 * 1024)} MB."


def export_cell(value: Any) -> str:
    """The cell as text (booleans and dates as JSON writes them), formula-safe (``core.csv_safety``)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return safe_cell(value.isoformat() if hasattr(value, "isoformat") else value)


class _Echo:
    def write(self, value: str) -> str:
        return value


def export_row(user: AppUser) -> list[str]:
    return [export_cell(user.status if name == "status" else getattr(user, name))
            for name in EXPORT_COLUMNS]


def export_csv(*, tenant: Tenant, filters: UserFilters) -> Iterator[str]:
    """Lines of the CSV of every user matching ``filters``, read in keyset chunks."""
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_COLUMNS)
    for user in app_user_iter(tenant=tenant, filters=filters):
        yield writer.writerow(export_row(user))


@audited_refusals
def app_user_export(*, actor: Any, tenant: Tenant, filters: UserFilters) -> Iterator[str]:
    """The CSV export of the list: audited now (``app_user.export``, with the filter), the lines
    streamed afterwards by the returned iterator."""
    if not role_can(actor_role(actor, tenant), "export_users"):
        raise role_refused("export_users", target_repr="CSV export")
    audit.record(
        event="app_user.export", actor=actor, tenant=tenant, target_model=AppUser,
        target_pk="", target_repr="CSV export", action=audit.ACCESS,
        data={"filter": filters.as_params()},
    )
    return export_csv(tenant=tenant, filters=filters)


def parse_import(data: bytes, *, max_rows: int | None = None, max_bytes: int = IMPORT_MAX_BYTES) -> list[InviteRow]:
    """Rows of an invitation CSV: a header row naming ``email`` (and optionally ``name`` and
    ``role``), then one person per line. Raises ``Invalid`` (field ``file``) for a file it
    cannot read, or longer than ``max_rows`` (default: one in-request batch)."""
    if len(data) > max_bytes:
        raise Invalid(f"The file is larger than {max_bytes // (1024 * 1024)} MB.", code="file_too_large",
                      field="file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Invalid("The file is not UTF-8 text. Save it as “CSV UTF-8” and try again.",
                      code="not_utf8", field="file") from exc
    if "\x00" in text:
        raise Invalid("The file holds NUL bytes: it is not a CSV file.", code="not_csv", field="file")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if not header:
            raise Invalid("The file is empty.", code="empty_file", field="file")
        columns = [h.strip().lower() for h in header]
        if "email" not in columns:
            raise Invalid(
                "The first line must name the columns, with at least “email” "
                "(and optionally “name” and “role”).",
                code="no_email_column", field="file",
            )
        at = {name: columns.index(name) for name in ("email", "name", "role") if name in columns}
        cap = policy().batch_max_users if max_rows is None else max_rows
        rows: list[InviteRow] = []
        for record in reader:
            if not any(cell.strip() for cell in record):
                continue
            if len(rows) >= cap:
                raise Invalid(f"One import invites at most {cap:,} people; split the file.",
                              code="batch_too_large", field="file")

            def cell(name: str, record: list[str] = record) -> str:
                index = at.get(name)
                return record[index] if index is not None and index < len(record) else ""

            row = InviteRow(line=reader.line_num, email=cell("email"), name=cell("name"), role=cell("role"))
            rows.append(row)
    except csv.Error as exc:
        raise Invalid(f"Line {reader.line_num}: the file is not valid CSV ({exc}).",
                      code="not_csv", field="file") from exc
    if not rows:
        raise Invalid("The file has a header but no one to invite.", code="no_rows", field="file")
    return rows


def import_preview(*, actor: Any, tenant: Tenant, file: File) -> list[InviteRow]:
    """The rows of an uploaded invitation CSV, each checked (``invite_rows_check``): what the
    preview shows. Changes nothing."""
    if file.size is not None and file.size > IMPORT_MAX_BYTES:
        raise Invalid(TOO_LARGE, code="file_too_large", field="file")
    rows = parse_import(file.read())
    return invite_rows_check(actor=actor, tenant=tenant, rows=rows)


def sign_rows(rows: list[InviteRow], *, tenant: Tenant, actor: Any) -> str:
    """The previewed rows, signed, so the confirm step imports exactly what was shown."""
    payload = {
        "t": tenant.slug, "a": str(actor.pk),
        "r": [[r.line, r.email, r.name, r.role] for r in rows],
    }
    return signing.dumps(payload, salt=IMPORT_SALT, compress=True)


def unsign_rows(token: str, *, tenant: Tenant, actor: Any) -> list[InviteRow]:
    try:
        payload = signing.loads(token, salt=IMPORT_SALT, max_age=IMPORT_MAX_AGE)
    except signing.BadSignature as exc:
        raise Invalid("This preview has expired or was altered; upload the file again.",
                      code="preview_invalid") from exc
    if payload.get("t") != tenant.slug or payload.get("a") != str(actor.pk):
        raise Invalid("This preview was made for someone else; upload the file again.",
                      code="preview_invalid")
    return [InviteRow(line=int(line), email=email, name=name, role=role)
            for line, email, name, role in payload["r"]]


def import_confirm(*, actor: Any, tenant: Tenant, payload: str) -> BatchResult:
    """The confirm step: invite the rows the signed preview showed (checked again)."""
    rows = unsign_rows(payload, tenant=tenant, actor=actor)
    return app_users_invite_many(actor=actor, tenant=tenant, rows=rows)
