"""Parsing of the users console's input. Field syntax only: the rules of the domain (unique
email, allowed domains, roles, protected users) are the services': they raise the error family
of ``core.errors`` with the field they are about, which the views put on these forms."""

from __future__ import annotations

import uuid
from typing import Any, cast

from django import forms
from django.utils import timezone

from accounts.app_users import job_actions, selectors
from accounts.app_users.selectors import UserFilters
from accounts.app_users.services import BAN_DURATIONS
from core.emails import EMAIL_MAX_LENGTH
from core.text import NAME_MAX_LENGTH, REASON_MAX_LENGTH
from tenants.config import TenantSettings

STATUS_CHOICES = [("", "Any status")] + [(s, s.capitalize()) for s in selectors.STATUSES]
MFA_CHOICES = [("", "MFA: any"), ("yes", "MFA enrolled"), ("no", "No MFA")]
SORT_CHOICES = [
    ("-created", "Newest first"),
    ("created", "Oldest first"),
    ("-last_sign_in", "Last sign-in: recent first"),
    ("last_sign_in", "Last sign-in: oldest first"),
    ("email", "Email A→Z"),
    ("-email", "Email Z→A"),
    ("name", "Name A→Z"),
    ("-name", "Name Z→A"),
    ("role", "Role A→Z"),
    ("-role", "Role Z→A"),
    ("status", "Status: active first"),
    ("-status", "Status: deleted first"),
]
PER_PAGE_CHOICES = [(n, f"{n} per page") for n in selectors.PER_PAGE_CHOICES]
BAN_CHOICES = [
    ("1h", "1 hour"), ("24h", "24 hours"), ("7d", "7 days"), ("30d", "30 days"),
    ("until", "Until a date…"), ("forever", "Indefinitely"),
]
assert {k for k, _ in BAN_CHOICES} == {*BAN_DURATIONS, "until", "forever"}
# Every batch action (a job: see batchjobs), in the order the list offers them.
BATCH_ACTIONS = {k: v for k, v in job_actions.LABELS.items() if k in job_actions.ACTIONS}
MAX_TEXTAREA = 40_000


def _role_choices(settings: TenantSettings, blank: str | None = None) -> list[tuple[str, str]]:
    choices = [(r, r) for r in settings.roles]
    return ([("", blank)] + choices) if blank is not None else choices


class UserFilterForm(forms.Form):
    """The list's whole state, from the query string. Invalid fields are dropped, not fatal."""

    q = forms.CharField(required=False, max_length=selectors.MAX_QUERY_LENGTH, strip=True)
    status = forms.ChoiceField(required=False, choices=STATUS_CHOICES)
    role = forms.ChoiceField(required=False)
    mfa = forms.ChoiceField(required=False, choices=MFA_CHOICES)
    created_from = forms.DateField(required=False)
    created_to = forms.DateField(required=False)
    signin_from = forms.DateField(required=False)
    signin_to = forms.DateField(required=False)
    sort = forms.ChoiceField(required=False, choices=SORT_CHOICES)
    per_page = forms.TypedChoiceField(
        required=False, choices=PER_PAGE_CHOICES, coerce=int,
        # django-stubs types empty_value as str; Django returns whatever value is given.
        empty_value=selectors.DEFAULT_PER_PAGE,  # type: ignore[arg-type]
    )
    cursor = forms.CharField(required=False, max_length=600)

    def __init__(self, data: Any, *, settings: TenantSettings, **kwargs: Any) -> None:
        super().__init__(data, **kwargs)
        cast(forms.ChoiceField, self.fields["role"]).choices = _role_choices(settings, "Any role")

    def value(self, name: str, default: Any = None) -> Any:
        self.is_valid()
        return self.cleaned_data.get(name, default) if name not in self.errors else default

    def filters(self) -> UserFilters:
        self.is_valid()
        data = {k: v for k, v in self.cleaned_data.items() if k not in self.errors}
        q = "".join(c for c in (data.get("q") or "") if c.isprintable())
        return UserFilters(
            q=q.strip(), status=data.get("status") or "", role=data.get("role") or "",
            mfa=data.get("mfa") or "", created_from=data.get("created_from"),
            created_to=data.get("created_to"), signin_from=data.get("signin_from"),
            signin_to=data.get("signin_to"), sort=data.get("sort") or "-created",
        )


class JSONTextarea(forms.CharField):
    widget = forms.Textarea(attrs={"rows": 6, "spellcheck": "false"})

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("max_length", MAX_TEXTAREA)
        kwargs.setdefault("strip", False)
        super().__init__(**kwargs)


class _UserFields(forms.Form):
    email = forms.CharField(max_length=EMAIL_MAX_LENGTH, widget=forms.EmailInput(attrs={"autocomplete": "off"}))
    name = forms.CharField(required=False, max_length=NAME_MAX_LENGTH)
    role = forms.ChoiceField()

    def __init__(self, *args: Any, settings: TenantSettings, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["role"]).choices = _role_choices(settings)
        self.fields["role"].initial = settings.default_role


class InviteForm(_UserFields):
    user_metadata = JSONTextarea(label="User metadata (JSON object)")


class CreateUserForm(_UserFields):
    MODES = [("invite", "Send an invitation"), ("password", "Set an initial password")]
    mode = forms.ChoiceField(choices=MODES, initial="invite", widget=forms.RadioSelect)
    password = forms.CharField(required=False, max_length=1000, strip=False,
                               widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
    confirmed = forms.BooleanField(required=False, label="Mark the email address as confirmed")
    user_metadata = JSONTextarea(label="User metadata (JSON object)")
    app_metadata = JSONTextarea(label="App metadata (JSON object)")

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if data.get("mode") == "password" and not data.get("password"):
            self.add_error("password", "Enter the initial password.")
        return data


class ProfileForm(_UserFields):
    pass


class MetadataForm(forms.Form):
    user_metadata = JSONTextarea(label="User metadata")
    app_metadata = JSONTextarea(label="App metadata")


class BanForm(forms.Form):
    duration = forms.ChoiceField(choices=BAN_CHOICES, initial="24h")
    until = forms.DateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    reason = forms.CharField(required=False, max_length=REASON_MAX_LENGTH)

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if data.get("duration") == "until" and not data.get("until") and "until" not in self.errors:
            self.add_error("until", "Choose the date and time the ban ends.")
        until = data.get("until")
        if until is not None and timezone.is_naive(until):
            data["until"] = timezone.make_aware(until)
        return data


class RecoveryForm(forms.Form):
    sign_out = forms.BooleanField(required=False)


class DeleteForm(forms.Form):
    mode = forms.ChoiceField(choices=[("soft", "Soft delete"), ("hard", "Delete permanently")], initial="soft")
    confirm = forms.BooleanField(
        error_messages={"required": "Tick the box to confirm: deleting cannot be undone."}
    )


class UUIDListField(forms.Field):
    """Many ``ids`` values (checkboxes); malformed ones are an error, not ignored."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value: Any) -> list[str]:
        values = value if isinstance(value, list | tuple) else ([value] if value else [])
        out: list[str] = []
        for v in values:
            try:
                out.append(str(uuid.UUID(str(v))))
            except ValueError as exc:
                raise forms.ValidationError("The selection holds an invalid id.") from exc
        return list(dict.fromkeys(out))


class BatchForm(forms.Form):
    action = forms.ChoiceField(choices=list(BATCH_ACTIONS.items()))
    scope = forms.ChoiceField(choices=[("selected", "Selected"), ("all", "All matching")], initial="selected")
    ids = UUIDListField(required=False)
    # ban options
    duration = forms.ChoiceField(choices=BAN_CHOICES, required=False)
    until = forms.DateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    reason = forms.CharField(required=False, max_length=REASON_MAX_LENGTH)
    # recovery option
    sign_out = forms.BooleanField(required=False)
    # change_role option (checked against the tenant's roles by the service)
    role = forms.CharField(required=False, max_length=100)
    confirm = forms.BooleanField(required=False)

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if data.get("scope") == "selected" and not data.get("ids") and "ids" not in self.errors:
            raise forms.ValidationError("Select at least one user, or choose “all matching”.")
        until = data.get("until")
        if until is not None and timezone.is_naive(until):
            data["until"] = timezone.make_aware(until)
        return data


class ImportForm(forms.Form):
    file = forms.FileField(label="CSV file")
