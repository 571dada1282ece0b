"""CSV export of the list (streamed, keyset chunks, safe against formula injection) and CSV
import of invitations (parse → preview with per-row errors → confirm; idempotent by email)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from django.core import signing

from accounts.app_users.batches import InviteRow
from accounts.app_users.selectors import UserFilters, app_user_iter
from accounts.app_users.services import AppUserError
from accounts.models import AppUser
from core.policy import policy
from tenants.models import Tenant

# A spreadsheet runs a cell starting with one of these as a formula (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
EXPORT_COLUMNS = (
    "id", "email", "name", "role", "status", "mfa_enabled", "email_confirmed_at", "invited_at",
    "banned_until", "ban_reason", "last_sign_in_at", "created_at", "deleted_at",
)
IMPORT_MAX_BYTES = 5 * 1024 * 1024
IMPORT_SALT = "adminpanel.users.import"
IMPORT_MAX_AGE = 3600


def safe_cell(value: Any) -> str:
    """The cell as text, prefixed with a single quote when a spreadsheet would evaluate it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


class _Echo:
    def write(self, value: str) -> str:
        return value


def export_row(user: AppUser) -> list[str]:
    return [safe_cell(user.status if name == "status" else getattr(user, name))
            for name in EXPORT_COLUMNS]


def export_csv(*, tenant: Tenant, filters: UserFilters) -> Iterator[str]:
    """Lines of the CSV of every user matching ``filters``, read in keyset chunks."""
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_COLUMNS)
    for user in app_user_iter(tenant=tenant, filters=filters):
        yield writer.writerow(export_row(user))


def parse_import(data: bytes) -> list[InviteRow]:
    """Rows of an invitation CSV: a header row naming ``email`` (and optionally ``name`` and
    ``role``), then one person per line. Raises ``AppUserError`` for a file it cannot read."""
    if len(data) > IMPORT_MAX_BYTES:
        raise AppUserError(f"The file is larger than {IMPORT_MAX_BYTES // (1024 * 1024)} MB.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AppUserError("The file is not UTF-8 text. Save it as “CSV UTF-8” and try again.") from exc
    if "\x00" in text:
        raise AppUserError("The file holds NUL bytes: it is not a CSV file.")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if not header:
            raise AppUserError("The file is empty.")
        columns = [h.strip().lower() for h in header]
        if "email" not in columns:
            raise AppUserError(
                "The first line must name the columns, with at least “email” "
                "(and optionally “name” and “role”)."
            )
        at = {name: columns.index(name) for name in ("email", "name", "role") if name in columns}
        cap = policy().batch_max_users
        rows: list[InviteRow] = []
        for record in reader:
            if not any(cell.strip() for cell in record):
                continue
            if len(rows) >= cap:
                raise AppUserError(f"One import invites at most {cap:,} people; split the file.")

            def cell(name: str, record: list[str] = record) -> str:
                index = at.get(name)
                return record[index] if index is not None and index < len(record) else ""

            row = InviteRow(line=reader.line_num, email=cell("email"), name=cell("name"), role=cell("role"))
            rows.append(row)
    except csv.Error as exc:
        raise AppUserError(f"Line {reader.line_num}: the file is not valid CSV ({exc}).") from exc
    if not rows:
        raise AppUserError("The file has a header but no one to invite.")
    return rows


def sign_rows(rows: list[InviteRow], *, tenant: Tenant, actor) -> str:
    """The previewed rows, signed, so the confirm step imports exactly what was shown."""
    payload = {
        "t": tenant.slug, "a": str(actor.pk),
        "r": [[r.line, r.email, r.name, r.role] for r in rows],
    }
    return signing.dumps(payload, salt=IMPORT_SALT, compress=True)


def unsign_rows(token: str, *, tenant: Tenant, actor) -> list[InviteRow]:
    try:
        payload = signing.loads(token, salt=IMPORT_SALT, max_age=IMPORT_MAX_AGE)
    except signing.BadSignature as exc:
        raise AppUserError("This preview has expired or was altered; upload the file again.") from exc
    if payload.get("t") != tenant.slug or payload.get("a") != str(actor.pk):
        raise AppUserError("This preview was made for someone else; upload the file again.")
    return [InviteRow(line=int(line), email=email, name=name, role=role)
            for line, email, name, role in payload["r"]]
