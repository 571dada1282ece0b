"""Changing a tenant's rules (``tenants.config.TenantSettings``) and its mail templates.

Tenant admins and instance admins only; every change is validated as a whole (nothing is saved
when one field is wrong: ``Invalid`` whose ``fields`` name each wrong one), made under a row
lock, and audited with its before/after diff. The
users console and the portal read the result through ``tenant_settings()`` and
``emails.template_for()``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from auditlog.context import disable_auditlog
from django.db import DatabaseError, transaction
from django.urls import reverse

from accounts.models import User
from audit import services as audit
from core.errors import Conflict, Invalid, NotFound, Refused
from core.request_context import public_url
from core.text import has_forbidden_chars
from tenants import db as tenant_db
from tenants import emails
from tenants.access import can
from tenants.config import (
    MAX_REDIRECT_URLS,
    MAX_ROLES,
    ROLE_RE,
    TenantSettings,
    lifetime_bounds,
    redirect_pattern_error,
    tenant_settings,
)
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
_PLACEHOLDER = re.compile(r"\{\{\s*([^}]*?)\s*\}\}")


def _invalid(errors: dict[str, list[str]], *, code: str) -> Invalid:
    """The refusal of a whole submission: every wrong field with its messages."""
    return Invalid(" ".join(m for ms in errors.values() for m in ms), code=code, fields=errors)


def _check_actor(actor: User | None, tenant: Tenant) -> None:
    if not can(actor, tenant, "manage_settings"):
        raise Refused("Only tenant admins change a tenant's settings.", code="forbidden")


def _unknown_template() -> NotFound:
    return NotFound("Unknown template.", code="unknown_template")


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):
        # One per line or comma-separated; "not a domain" stays one (wrong) entry, not three.
        return [part.strip() for part in re.split(r"[,\n\r]+", value) if part.strip()]
    return list(value)


def validate_settings(values: Mapping[str, Any], *, current: TenantSettings) -> TenantSettings:
    """The settings that ``values`` (a partial mapping) make, or ``Invalid`` (code
    ``invalid_settings``, ``fields`` naming each wrong one)."""
    fields = {f.name for f in dataclasses.fields(TenantSettings)}
    unknown = set(values) - fields
    if unknown:
        raise Invalid(f"Unknown settings: {', '.join(sorted(unknown))}.", code="unknown_setting")
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

    if "redirect_urls" in values:
        raw_urls = values["redirect_urls"]  # one a line: a URL may hold a comma
        urls = [str(u).strip() for u in (raw_urls.splitlines() if isinstance(raw_urls, str) else raw_urls or [])
                if str(u).strip()]
        bad = [f"{u[:80]!r} ({why})" for u in urls if (why := redirect_pattern_error(u))]
        if bad:
            err("redirect_urls", "Not an allowed redirect URL: " + ", ".join(bad[:5])
                + ". Write one per line, like https://app.example.com/welcome or https://app.example.com/*.")
        elif len(urls) > MAX_REDIRECT_URLS:
            err("redirect_urls", f"At most {MAX_REDIRECT_URLS} redirect URLs.")
        new["redirect_urls"] = list(dict.fromkeys(urls))

    if "sender_name" in values:
        sender = str(values["sender_name"] or "").strip()
        if len(sender) > SENDER_NAME_MAX:
            err("sender_name", f"At most {SENDER_NAME_MAX} characters.")
        elif has_forbidden_chars(sender) or any(ch in sender for ch in '<>"'):
            err("sender_name", "The sender name cannot contain control or text-direction "
                "characters, quotes or angle brackets.")
        new["sender_name"] = sender

    if errors:
        raise _invalid(errors, code="invalid_settings")
    return TenantSettings.from_json(new)


def _roles_in_use(tenant: Tenant, removed: set[str]) -> dict[str, bool]:
    from accounts.models import AppUser

    alias = tenant_db.using(tenant)
    in_use = {}
    for role in sorted(removed):
        # (role, -created_at, -id) index: one short probe per removed role.
        in_use[role] = AppUser.objects.using(alias).filter(role=role, deleted_at__isnull=True).exists()
    return in_use


def tenant_settings_update(
    *, actor: User | None, tenant: Tenant, values: Mapping[str, Any]
) -> TenantSettings:
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
                raise Conflict("The tenant's database did not answer; roles were not changed.",
                               code="tenant_unreachable", field="roles") from None
            held = [r for r, used in in_use.items() if used]
            if held:
                raise Conflict(
                    "App users still have the role(s) " + ", ".join(repr(r) for r in held)
                    + "; give them another role before removing it.",
                    code="role_in_use", field="roles", roles=held,
                )
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
    """A mail template's subject and body, checked; ``Invalid`` (code ``invalid_template``,
    ``fields`` ``subject`` and ``body``) otherwise."""
    if kind not in emails.KINDS:
        raise _unknown_template()
    errors: dict[str, list[str]] = {}
    subject = (subject or "").strip()
    body = (body or "").replace("\r\n", "\n").strip("\n")
    if not subject:
        errors.setdefault("subject", []).append("Enter a subject.")
    elif len(subject) > SUBJECT_MAX:
        errors.setdefault("subject", []).append(f"At most {SUBJECT_MAX} characters.")
    elif has_forbidden_chars(subject):
        errors.setdefault("subject", []).append(
            "The subject is one line, without control or text-direction characters.")
    if not body.strip():
        errors.setdefault("body", []).append("Enter a body.")
    elif len(body) > BODY_MAX:
        errors.setdefault("body", []).append(f"At most {BODY_MAX:,} characters.")
    elif has_forbidden_chars(body, multiline=True):
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
        raise _invalid(errors, code="invalid_template")
    return {"subject": subject, "body": body}


def _template_snapshot(tenant: Tenant, kind: str) -> dict[str, Any]:
    tpl = emails.template_for(tenant, kind)
    custom = bool((tenant.email_templates or {}).get(kind))
    return {f"{kind}.subject": tpl["subject"], f"{kind}.body": tpl["body"], f"{kind}.custom": custom}


def _store_template(
    *, actor: User | None, tenant: Tenant, kind: str, value: dict[str, str] | None, event: str
) -> Tenant:
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


def email_template_update(
    *, actor: User | None, tenant: Tenant, kind: str, subject: str, body: str
) -> Tenant:
    """Store a tenant's own version of one mail template (validated; see ``validate_template``)."""
    _check_actor(actor, tenant)
    value = validate_template(kind, subject, body)
    if value == emails.DEFAULTS[kind]:
        return email_template_reset(actor=actor, tenant=tenant, kind=kind)
    return _store_template(
        actor=actor, tenant=tenant, kind=kind, value=value, event="tenant.email_template_update"
    )


def email_template_reset(*, actor: User | None, tenant: Tenant, kind: str) -> Tenant:
    """Go back to the product's default text for one mail template."""
    _check_actor(actor, tenant)
    if kind not in emails.KINDS:
        raise _unknown_template()
    return _store_template(
        actor=actor, tenant=tenant, kind=kind, value=None, event="tenant.email_template_reset"
    )


SAMPLE = {"email": "jane.doe@example.com", "name": "Jane Doe"}


def email_template_preview(
    *, tenant: Tenant, kind: str, subject: str | None = None, body: str | None = None
) -> emails.RenderedEmail:
    """The message as an app user would receive it, with sample data and a sample link: the
    stored template, or a draft (``subject`` and ``body``, checked by ``validate_template``)."""
    from accounts.models import ActionToken
    from accounts.tokens import PATHS

    if kind not in emails.KINDS:
        raise _unknown_template()
    template = None
    if subject is not None or body is not None:
        template = validate_template(kind, subject or "", body or "")
    rules = tenant_settings(tenant)
    minutes = int(rules.lifetime(kind).total_seconds() // 60)
    path = PATHS[ActionToken.Purpose(kind)]
    link = public_url(reverse(f"portal:{path}", args=[tenant.slug, "SAMPLE-LINK-TOKEN"]))
    return emails.render_email(
        tenant, kind, email=SAMPLE["email"], name=SAMPLE["name"], link=link,
        expires_minutes=minutes, sender_name=rules.sender_name, template=template,
    )
