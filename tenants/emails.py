"""Mail templates of a tenant: invitation, recovery, magic link and email change, with per-tenant
overrides; and the fixed notices (no link) such as the one the old address gets on an email change.

Templates use ``{{ name }}`` placeholders only (no template language: a tenant admin's text can
never reach settings, files or tags). Unknown placeholders are left as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tenants.models import Tenant

KINDS = ("invite", "recovery", "magic_link", "email_change")
PLACEHOLDERS = ("tenant_name", "email", "name", "link", "expires_in", "sender_name")
_PLACEHOLDER_RE = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")

DEFAULTS: dict[str, dict[str, str]] = {
    "invite": {
        "subject": "You are invited to {{ tenant_name }}",
        "body": (
            "Hello {{ name }},\n\n"
            "You have been invited to {{ tenant_name }}. Choose a password to accept the "
            "invitation:\n\n{{ link }}\n\n"
            "This link works once and expires in {{ expires_in }}.\n"
            "If you did not expect this invitation, ignore this message.\n\n"
            "{{ sender_name }}\n"
        ),
    },
    "recovery": {
        "subject": "Reset your {{ tenant_name }} password",
        "body": (
            "Hello {{ name }},\n\n"
            "Somebody asked to reset the password of {{ email }} at {{ tenant_name }}. "
            "Choose a new one here:\n\n{{ link }}\n\n"
            "This link works once and expires in {{ expires_in }}. If it was not you, ignore "
            "this message: your password stays as it is.\n\n{{ sender_name }}\n"
        ),
    },
    "magic_link": {
        "subject": "Your sign-in link for {{ tenant_name }}",
        "body": (
            "Hello {{ name }},\n\n"
            "Sign in to {{ tenant_name }} with this link:\n\n{{ link }}\n\n"
            "It works once and expires in {{ expires_in }}. If you did not ask for it, ignore "
            "this message.\n\n{{ sender_name }}\n"
        ),
    },
    "email_change": {
        "subject": "Confirm your new {{ tenant_name }} address",
        "body": (
            "Hello {{ name }},\n\n"
            "An administrator of {{ tenant_name }} changed the email address of your account to "
            "{{ email }}. Open this link to confirm it; until then the old address stays:\n\n"
            "{{ link }}\n\n"
            "This link works once and expires in {{ expires_in }}. If you do not know this "
            "account, ignore this message.\n\n{{ sender_name }}\n"
        ),
    },
}

# Notices: fixed texts, no link, not editable (what they say is a security message).
NOTICES: dict[str, dict[str, str]] = {
    "email_change_notice": {
        "subject": "The email address of your {{ tenant_name }} account is being changed",
        "body": (
            "Hello {{ name }},\n\n"
            "An administrator of {{ tenant_name }} asked to change the email address of your "
            "account from {{ email }} to {{ new_email }}. The change takes effect when the new "
            "address confirms it, and then this address no longer signs in or receives links.\n\n"
            "If you did not expect this, contact the administrators of {{ tenant_name }} now.\n\n"
            "{{ sender_name }}\n"
        ),
    },
}


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    body: str


def template_for(tenant: Tenant, kind: str) -> dict[str, str]:
    if kind not in KINDS:
        raise KeyError(kind)
    override = (tenant.email_templates or {}).get(kind) or {}
    return {
        "subject": override.get("subject") or DEFAULTS[kind]["subject"],
        "body": override.get("body") or DEFAULTS[kind]["body"],
    }


def fill(text: str, values: dict[str, str]) -> str:
    """Substitute the placeholders. A value ending in "." swallows the template's own "." after it
    ("invited to Acme Inc." not "Acme Inc.."); a placeholder glued to a word ("Hello{{ name }}",
    the old default) gets its space."""

    def value(m: re.Match[str]) -> str:
        found = values.get(m.group(1))
        if found is None:
            return m.group(0)
        if found and m.start() > 0 and (text[m.start() - 1].isalnum()):
            found = " " + found
        return found

    out = []
    last = 0
    for m in _PLACEHOLDER_RE.finditer(text):
        out.append(text[last:m.start()])
        filled = value(m)
        out.append(filled)
        last = m.end()
        if filled.endswith(".") and text[last:last + 1] == ".":
            last += 1
    out.append(text[last:])
    return "".join(out)


def humanize_duration(minutes: int) -> str:
    if minutes % (60 * 24) == 0:
        days = minutes // (60 * 24)
        return f"{days} day{'s' if days != 1 else ''}"
    if minutes % 60 == 0:
        hours = minutes // 60
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def render_email(
    tenant: Tenant, kind: str, *, email: str, name: str, link: str, expires_minutes: int,
    sender_name: str = "", template: dict[str, str] | None = None,
) -> RenderedEmail:
    tpl = template or template_for(tenant, kind)
    values = {
        "tenant_name": tenant.name,
        "email": email,
        "name": name or "there",
        "link": link,
        "expires_in": humanize_duration(expires_minutes),
        "sender_name": sender_name or f"The {tenant.name} team",
    }
    subject = " ".join(fill(tpl["subject"], values).split())[:300]
    return RenderedEmail(subject=subject, body=fill(tpl["body"], values))


def render_notice(
    tenant: Tenant, kind: str, *, email: str, name: str, sender_name: str = "", **extra: str,
) -> RenderedEmail:
    tpl = NOTICES[kind]
    values = {"tenant_name": tenant.name, "email": email, "name": name or "there",
              "sender_name": sender_name or f"The {tenant.name} team", **extra}
    subject = " ".join(fill(tpl["subject"], values).split())[:300]
    return RenderedEmail(subject=subject, body=fill(tpl["body"], values))
