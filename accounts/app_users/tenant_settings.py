"""Changing a tenant's rules (``tenants.config.TenantSettings``) and its mail templates.

Tenant admins and instance admins only; every change is validated as a whole (nothing is saved
when one field is wrong), made under a row lock, and audited with its before/after diff. The
users console and the portal read the result through ``tenant_settings()`` and
``emails.template_for()``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from auditlog.context import disable_auditlog
from django.core.exceptions import PermissionDenied
from django.db import DatabaseError, transaction
from django.urls import reverse

from audit import services as audit
from core.request_context import public_url
from tenants import db as tenant_db
from tenants import emails
from tenants.access import can
from tenants.config import MAX_ROLES, ROLE_RE, TenantSettings, lifetime_bounds, tenant_settings
from tenants.models import Tenant

MAX_DOMAINS = 100
SENDER_NAME_MAX = 100
SUBJECT_MAX = 200
BODY_MAX = 10_000
_ROLE = re.compile(ROLE_RE)
# A host name: labels of letters, digits and inner dashes, a dot between them, at least two.
_DOMAIN = re.compile(
    r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
)
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")
_PLACEHOLDER = re.compile(r"\{\{\s*([^}]*?)\s*\}\}")


class SettingsInvalid(Exception):
    """The submitted values were refused; ``errors`` maps each field to its messages."""

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))


def _check_actor(actor, tenant: Tenant) -> None:
    if not can(actor, tenant, "manage_settings"):
        raise PermissionDenied("Only tenant admins change a tenant's settings.")


def _bad_chars(text: str, *, newlines_ok: bool) -> bool:
    for ch in text:
        if ch in _BIDI or ch == "\x00":
            return True
        if ord(ch) < 32 and not (newlines_ok and ch in "\n\r\t"):
            return True
    return False


def _as_list(value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, str):
        # One per line or comma-separated; "not a domain" stays one (wrong) entry, not three.
        return [part.strip() for part in re.split(r"[,\n\r]+", value) if part.strip()]
    return list(value)


def validate_settings(values: Mapping[str, Any], *, current: TenantSettings) -> TenantSettings:
    """The settings that ``values`` (a partial mapping) make, or ``SettingsInvalid``."""
    fields = {f.name for f in dataclasses.fields(TenantSettings)}
    unknown = set(values) - fields
    if unknown:
        raise SettingsInvalid({"__all__": [f"Unknown settings: {', '.join(sorted(unknown))}."]})
    errors: dict[str, list[str]] = {}
    new = current.as_json()

    def err(name: str, message: str) -> None:
        errors.setdefault(name, []).append(message)

    if "roles" in values:
        roles = [str(r).strip().lower() for r in _as_list(values["roles"])]
        bad = [r for r in roles if not _ROLE.match(r)]
        if bad:
            err("roles", f"Not a valid role name: {', '.join(repr(b[:50]) for b in bad[:5])}. "
                "Use lower-case letters, digits, '-' and '_', starting with a letter.")
        elif not roles:
            err("roles", "Give at least one role.")
        elif len(roles) > MAX_ROLES:
            err("roles", f"At most {MAX_ROLES} roles.")
        elif len(set(roles)) != len(roles):
            err("roles", "Each role appears once.")
        new["roles"] = roles
    if "protected_roles" in values:
        new["protected_roles"] = [str(r).strip().lower() for r in _as_list(values["protected_roles"])]
    if "roles" not in errors:
        outside = [r for r in new["protected_roles"] if r not in new["roles"]]
        if outside:
            err("protected_roles", "Protected roles must be among the roles; not a role: "
                + ", ".join(repr(r[:50]) for r in outside[:5]) + ".")
        elif len(set(new["protected_roles"])) != len(new["protected_roles"]):
            err("protected_roles", "Each protected role appears once.")
    if "default_role" in values:
        new["default_role"] = str(values["default_role"] or "").strip().lower()
    if "roles" not in errors and new["default_role"] not in new["roles"]:
        err("default_role", "The default role must be one of the roles.")

    for name, (low, high) in lifetime_bounds().items():
        if name not in values:
            continue
        raw = values[name]
        try:
            number = int(str(raw).strip()) if not isinstance(raw, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None:
            err(name, "Enter a whole number.")
        elif not low <= number <= high:
            err(name, f"Choose a value between {low} and {high}.")
        else:
            new[name] = number

    if "require_mfa" in values:
        raw = values["require_mfa"]
        if isinstance(raw, str):
            raw = raw.strip().lower() in {"1", "true", "on", "yes"}
        new["require_mfa"] = bool(raw)

    if "allowed_email_domains" in values:
        domains = [str(d).strip().lower().lstrip("@") for d in _as_list(values["allowed_email_domains"])]
        bad = [d for d in domains if not _DOMAIN.match(d)]
        if bad:
            err("allowed_email_domains", "Not a domain name: "
                + ", ".join(repr(b[:60]) for b in bad[:5]) + ". Write one per line, like example.com.")
        elif len(domains) > MAX_DOMAINS:
            err("allowed_email_domains", f"At most {MAX_DOMAINS} domains.")
        new["allowed_email_domains"] = list(dict.fromkeys(domains))

    if "sender_name" in values:
        sender = str(values["sender_name"] or "").strip()
        if len(sender) > SENDER_NAME_MAX:
            err("sender_name", f"At most {SENDER_NAME_MAX} characters.")
        elif _bad_chars(sender, newlines_ok=False) or any(ch in sender for ch in '<>"'):
            err("sender_name", "The sender name cannot contain control or text-direction "
                "characters, quotes or angle brackets.")
        new["sender_name"] = sender

    if errors:
        raise SettingsInvalid(errors)
    return TenantSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in new.items()})


def _roles_in_use(tenant: Tenant, removed: set[str]) -> dict[str, bool]:
    from accounts.models import AppUser

    alias = tenant_db.using(tenant)
    in_use = {}
    for role in sorted(removed):
        # (role, -created_at, -id) index: one short probe per removed role.
        in_use[role] = AppUser.objects.using(alias).filter(role=role, deleted_at__isnull=True).exists()
    return in_use


def tenant_settings_update(*, actor, tenant: Tenant, values: Mapping[str, Any]) -> TenantSettings:
    """Validate and store new settings (any subset of the fields); returns the result.

    A role that app users still hold cannot be removed: their role would silently point at
    nothing. Link lifetimes must stay within the security policy's bounds.
    """
    _check_actor(actor, tenant)
    with transaction.atomic():
        tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
        current = tenant_settings(tenant)
        new = validate_settings(values, current=current)
        removed = set(current.roles) - set(new.roles)
        if removed and tenant.is_usable:
            try:
                in_use = _roles_in_use(tenant, removed)
            except DatabaseError:
                raise SettingsInvalid(
                    {"roles": ["The tenant's database did not answer; roles were not changed."]}
                ) from None
            held = [r for r, used in in_use.items() if used]
            if held:
                raise SettingsInvalid({"roles": [
                    "App users still have the role(s) " + ", ".join(repr(r) for r in held)
                    + "; give them another role before removing it."
                ]})
        before, after = current.as_json(), new.as_json()
        if before == after and tenant.settings == after:
            return new
        tenant.settings = after
        with disable_auditlog():
            tenant.save(update_fields=["settings", "updated_at"])
        audit.record(
            event="tenant.settings_update", actor=actor, tenant=tenant, target=tenant,
            before=before, after=after,
        )
    return new


def validate_template(kind: str, subject: str, body: str) -> dict[str, str]:
    """A mail template's subject and body, checked; ``SettingsInvalid`` otherwise."""
    if kind not in emails.KINDS:
        raise SettingsInvalid({"__all__": ["Unknown template."]})
    errors: dict[str, list[str]] = {}
    subject = (subject or "").strip()
    body = (body or "").replace("\r\n", "\n").strip("\n")
    if not subject:
        errors.setdefault("subject", []).append("Enter a subject.")
    elif len(subject) > SUBJECT_MAX:
        errors.setdefault("subject", []).append(f"At most {SUBJECT_MAX} characters.")
    elif _bad_chars(subject, newlines_ok=False):
        errors.setdefault("subject", []).append(
            "The subject is one line, without control or text-direction characters.")
    if not body.strip():
        errors.setdefault("body", []).append("Enter a body.")
    elif len(body) > BODY_MAX:
        errors.setdefault("body", []).append(f"At most {BODY_MAX:,} characters.")
    elif _bad_chars(body, newlines_ok=True):
        errors.setdefault("body", []).append(
            "The body cannot contain control or text-direction characters.")
    elif not re.search(r"\{\{\s*link\s*\}\}", body):
        errors.setdefault("body", []).append(
            "The body must contain {{ link }}: without it the message is useless.")
    for name, text in (("subject", subject), ("body", body)):
        unknown = sorted({m.group(1) for m in _PLACEHOLDER.finditer(text)} - set(emails.PLACEHOLDERS))
        if unknown and name not in errors:
            errors.setdefault(name, []).append(
                "Unknown placeholder(s): " + ", ".join(f"{{{{ {u[:30]} }}}}" for u in unknown[:5])
                + ". Available: " + ", ".join(f"{{{{ {p} }}}}" for p in emails.PLACEHOLDERS) + "."
            )
    if errors:
        raise SettingsInvalid(errors)
    return {"subject": subject, "body": body}


def _template_snapshot(tenant: Tenant, kind: str) -> dict[str, Any]:
    tpl = emails.template_for(tenant, kind)
    custom = bool((tenant.email_templates or {}).get(kind))
    return {f"{kind}.subject": tpl["subject"], f"{kind}.body": tpl["body"], f"{kind}.custom": custom}


def _store_template(*, actor, tenant: Tenant, kind: str, value: dict | None, event: str) -> Tenant:
    with transaction.atomic():
        tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
        before = _template_snapshot(tenant, kind)
        templates = dict(tenant.email_templates or {})
        if value is None:
            if kind not in templates:
                return tenant
            templates.pop(kind)
        else:
            if templates.get(kind) == value:
                return tenant
            templates[kind] = value
        tenant.email_templates = templates
        with disable_auditlog():
            tenant.save(update_fields=["email_templates", "updated_at"])
        audit.record(
            event=event, actor=actor, tenant=tenant, target=tenant,
            before=before, after=_template_snapshot(tenant, kind), data={"template": kind},
        )
    return tenant


def email_template_update(*, actor, tenant: Tenant, kind: str, subject: str, body: str) -> Tenant:
    """Store a tenant's own version of one mail template (validated; see ``validate_template``)."""
    _check_actor(actor, tenant)
    value = validate_template(kind, subject, body)
    if value == emails.DEFAULTS[kind]:
        return email_template_reset(actor=actor, tenant=tenant, kind=kind)
    return _store_template(
        actor=actor, tenant=tenant, kind=kind, value=value, event="tenant.email_template_update"
    )


def email_template_reset(*, actor, tenant: Tenant, kind: str) -> Tenant:
    """Go back to the product's default text for one mail template."""
    _check_actor(actor, tenant)
    if kind not in emails.KINDS:
        raise SettingsInvalid({"__all__": ["Unknown template."]})
    return _store_template(
        actor=actor, tenant=tenant, kind=kind, value=None, event="tenant.email_template_reset"
    )


SAMPLE = {"email": "jane.doe@example.com", "name": "Jane Doe"}


def email_template_preview(
    *, tenant: Tenant, kind: str, template: dict[str, str] | None = None
) -> emails.RenderedEmail:
    """The message as an app user would receive it, with sample data and a sample link."""
    from accounts.tokens import PATHS

    rules = tenant_settings(tenant)
    minutes = int(rules.lifetime(kind).total_seconds() // 60)
    link = public_url(reverse(f"portal:{PATHS[kind]}", args=[tenant.slug, "SAMPLE-LINK-TOKEN"]))
    return emails.render_email(
        tenant, kind, email=SAMPLE["email"], name=SAMPLE["name"], link=link,
        expires_minutes=minutes, sender_name=rules.sender_name, template=template,
    )
