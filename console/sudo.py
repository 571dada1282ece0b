"""Sudo mode: a destructive POST that needs a fresh code is kept, named, and completed after it.

``recent_otp_required`` stores the refused POST (its path and fields, never a file) in the
session under a random key and sends the actor to ``/account/reverify/?pending=<key>``. That
page says what the code is for ("Ban ada@example.com for 7 days, reason: spam"); once the code is
accepted it renders the same fields as a form posted back to the same path (submitted by
``app.js`` at once, or by one click without JavaScript). The action then runs through its own
view, gates and CSRF check, exactly as if it had been sent again. A pending action is single
use, expires after ``PENDING_SECONDS``, and at most ``PENDING_MAX`` are kept per session.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest

SESSION_KEY = "adminpanel_sudo_pending"
PENDING_SECONDS = 10 * 60
PENDING_MAX = 3
PAYLOAD_MAX = 20_000  # characters of field names and values together
SKIPPED = {"csrfmiddlewaretoken"}

# What the code (or the confirmation) is for, by URL name; ``{who}`` is the affected person.
LABELS = {
    "users-ban": "Ban {who}",
    "users-unban": "Unban {who}",
    "users-sign-out": "Sign {who} out",
    "users-factor-remove": "Remove the authenticator of {who}",
    "users-delete": "Delete {who}",
    "users-batch": "{action} {count}",
    "invitations-revoke": "Revoke the invitation of {who}",
    "impersonation-start": "Impersonate {who}",
    "staff-deactivate": "Deactivate the staff member {who}",
    "staff-otp-reset": "Reset the two-step sign-in of {who}",
    "staff-instance-admin": "Change the instance admin rights of {who}",
    "staff-role-remove": "Remove the role of {who} in {slug}",
    "tenant-admin-remove": "Remove the access of {who} to this tenant",
    "tenants-lifecycle": "{verb} the tenant {slug}",
    "tenants-purge": "Purge the tenant {slug} and drop its database",
    "api-key-revoke": "Revoke this API key",
    "staff-token-revoke": "Revoke this personal token",
    "account-backup-codes": "Make new backup codes (the current ones stop working)",
    "account-authenticator": "Replace your authenticator app",
}
STAFF_TARGET = {"tenant-admin-remove": "user_id"}  # these URLs name a staff member, not an app user
DETAIL_FIELDS = {"duration": "Duration", "until": "Until", "reason": "Reason", "mode": "Deletion",
                 "scope": "Users"}


def _now() -> int:
    return int(time.time())


@dataclass(frozen=True)
class Pending:
    key: str
    path: str
    back: str
    label: str
    details: list[tuple[str, str]]
    fields: list[tuple[str, str]]


def _who(request: HttpRequest, kwargs: dict[str, Any], name: str = "") -> str:
    """The email of the user or staff member the URL names, read through the request's gates."""
    if name in STAFF_TARGET:
        kwargs = {"pk": kwargs.get(STAFF_TARGET[name])}
    if "user_id" in kwargs and getattr(request, "tenant_alias", None):
        from accounts.models import AppUser

        user = AppUser.objects.using(request.tenant_alias).filter(pk=kwargs["user_id"]).only("email").first()  # type: ignore[attr-defined]
        return user.email if user is not None else "this user"
    if "pk" in kwargs:
        from accounts.models import User

        member = User.objects.filter(pk=kwargs["pk"]).only("email").first()
        return member.email if member is not None else "this staff member"
    return ""


def describe(request: HttpRequest, kwargs: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    """The sentence naming the pending action and its details (duration, reason, ...)."""
    from accounts.app_users.forms import BAN_CHOICES, BATCH_ACTIONS

    name = request.resolver_match.url_name if request.resolver_match else ""
    post = request.POST
    count = len(post.getlist("ids"))
    label = LABELS.get(name or "", "Finish what you started")
    label = label.format(
        who=_who(request, kwargs, name or "") or "this account", slug=kwargs.get("slug", ""),
        verb=str(kwargs.get("verb", "change")).capitalize(),
        action=BATCH_ACTIONS.get(post.get("action", ""), "Change"),
        count="all matching users" if post.get("scope") == "all" else f"{count} user{'s' if count != 1 else ''}",
    )
    choices = dict(BAN_CHOICES) | {"soft": "Soft delete", "hard": "Permanently", "all": "All matching",
                                   "selected": "Selected"}
    details = []
    for field, title in DETAIL_FIELDS.items():
        value = post.get(field, "").strip()
        if field == "until" and post.get("duration") != "until":
            continue
        if value:
            details.append((title, choices.get(value, value)[:300]))
    return label, details


def pending_store(request: HttpRequest, *, back: str, kwargs: dict[str, Any]) -> str | None:
    """Keep the refused POST for after the code; None when it cannot be carried (a file upload)."""
    if request.FILES:
        return None
    fields = [(k, v) for k in request.POST for v in request.POST.getlist(k) if k not in SKIPPED]
    if sum(len(k) + len(v) for k, v in fields) > PAYLOAD_MAX:
        return None
    label, details = describe(request, kwargs)
    now = _now()
    stored = {k: v for k, v in dict(request.session.get(SESSION_KEY, {})).items()
              if now - v.get("at", 0) <= PENDING_SECONDS}
    while len(stored) >= PENDING_MAX:
        stored.pop(next(iter(stored)))
    key = secrets.token_urlsafe(12)
    stored[key] = {"path": request.path, "back": back, "label": label, "details": details,
                   "fields": fields, "at": now}
    request.session[SESSION_KEY] = stored
    return key


def pending_get(request: HttpRequest, key: str, *, pop: bool = False) -> Pending | None:
    stored = dict(request.session.get(SESSION_KEY, {}))
    entry = stored.get(key) if isinstance(key, str) else None
    if not entry or _now() - entry.get("at", 0) > PENDING_SECONDS:
        return None
    if pop:
        stored.pop(key)
        request.session[SESSION_KEY] = stored
    return Pending(key=key, path=entry["path"], back=entry["back"], label=entry["label"],
                   details=[tuple(d) for d in entry["details"]],
                   fields=[tuple(f) for f in entry["fields"]])
