"""Parsing of the tenant pages' forms. Deeper rules live in the services, which check again."""

from __future__ import annotations

import json

from django import forms
from django.core.exceptions import ValidationError

from core.text import TENANT_NAME_MAX_LENGTH
from tenants.models import SLUG_MAX_LENGTH, validate_slug
from tenants.services import METADATA_MAX_CHARS


def _clean_metadata_text(text: str) -> dict:
    text = (text or "").strip()
    if not text:
        return {}
    if len(text) > METADATA_MAX_CHARS:
        raise ValidationError(f"At most {METADATA_MAX_CHARS:,} characters.")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).") from None
    except RecursionError:
        raise ValidationError("Metadata is nested too deeply.") from None
    if not isinstance(value, dict):
        raise ValidationError('Metadata is a JSON object, like {"plan": "enterprise"}.')
    return value


class TenantEditForm(forms.Form):
    name = forms.CharField(max_length=TENANT_NAME_MAX_LENGTH, strip=True)
    metadata = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 5, "spellcheck": "false"}),
        max_length=METADATA_MAX_CHARS,
        help_text='A JSON object, e.g. {"plan": "enterprise"}. Leave empty for none.',
    )

    def clean_metadata(self) -> dict:
        return _clean_metadata_text(self.cleaned_data.get("metadata", ""))


class TenantCreateForm(TenantEditForm):
    slug = forms.CharField(
        max_length=SLUG_MAX_LENGTH, strip=True,
        help_text="Lower-case letters, digits and dashes. It appears in URLs and never changes.",
    )
    field_order = ["slug", "name", "metadata"]

    def clean_slug(self) -> str:
        slug = self.cleaned_data["slug"]
        validate_slug(slug)
        return slug


class PurgeForm(forms.Form):
    confirm_slug = forms.CharField(max_length=100, strip=True, label="Type the slug to confirm")


class TenantSettingsForm(forms.Form):
    """Text in, values for ``tenant_settings_update`` out (lists as comma/line separated text)."""

    roles = forms.CharField(max_length=2000, help_text="Comma-separated, e.g. user, editor, admin.")
    protected_roles = forms.CharField(
        max_length=2000, required=False,
        help_text="Users with these roles can only be changed by a tenant admin.",
    )
    default_role = forms.CharField(max_length=50, help_text="Given to invited users.")
    password_min_length = forms.CharField(max_length=5, label="Password minimum length")
    require_mfa = forms.BooleanField(required=False, label="App users must set up MFA")
    invitation_hours = forms.CharField(max_length=5, label="Invitation link lifetime (hours)")
    recovery_minutes = forms.CharField(max_length=5, label="Recovery link lifetime (minutes)")
    magic_link_minutes = forms.CharField(max_length=5, label="Magic link lifetime (minutes)")
    allowed_email_domains = forms.CharField(
        required=False, max_length=10_000,
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
        help_text="One per line. Empty: any domain may be invited.",
    )
    sender_name = forms.CharField(
        required=False, max_length=200,
        help_text="Shown as the sender of invitation and link mails.",
    )
    redirect_urls = forms.CharField(
        required=False, max_length=30_000, label="Redirect URLs",
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
        help_text="Where an API-made link may send its user after use (redirect_to), one per line: an exact "
                  "URL, or a prefix ending in /*, like https://app.example.com/*. Empty: links lead to the portal.",
    )

    @classmethod
    def initial_from(cls, settings) -> dict:
        return {
            "roles": ", ".join(settings.roles),
            "protected_roles": ", ".join(settings.protected_roles),
            "default_role": settings.default_role,
            "password_min_length": settings.password_min_length,
            "require_mfa": settings.require_mfa,
            "invitation_hours": settings.invitation_hours,
            "recovery_minutes": settings.recovery_minutes,
            "magic_link_minutes": settings.magic_link_minutes,
            "allowed_email_domains": "\n".join(settings.allowed_email_domains),
            "sender_name": settings.sender_name,
            "redirect_urls": "\n".join(settings.redirect_urls),
        }


class EmailTemplateForm(forms.Form):
    subject = forms.CharField(max_length=1000, strip=False)
    body = forms.CharField(
        max_length=50_000, strip=False, widget=forms.Textarea(attrs={"rows": 14, "spellcheck": "false"})
    )
