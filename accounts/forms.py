"""Parsing and field validation for the staff pages. Rules live in the services."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from accounts.models import User
from accounts.services.staff import clean_email, clean_name
from core.access import ROLES
from core.emails import EMAIL_MAX_LENGTH
from core.errors import ServiceError
from core.policy import policy
from core.text import NAME_MAX_LENGTH
from tenants.models import Tenant

PASSWORD_MAX_LENGTH = 1024


def password_help() -> str:
    return (
        f"At least {policy().staff_password_min_length} characters. Not a common password, not "
        "only digits, and not close to your name or email address."
    )


ROLE_CHOICES = [(r, r.title()) for r in ROLES]
ROLE_HELP = {
    "admin": "Everything in the tenant, including its staff.",
    "support": "View, invite, resend, reset passwords, magic links, sign users out.",
    "viewer": "Read only.",
}


def _password_field(label: str, *, autocomplete: str, help_text: str = "") -> forms.CharField:
    return forms.CharField(
        label=label, strip=False, max_length=PASSWORD_MAX_LENGTH, help_text=help_text,
        widget=forms.PasswordInput(attrs={"autocomplete": autocomplete}),
    )


def _field_error(exc: ServiceError) -> ValidationError:
    """A service rule's refusal as the form field's error (same message, same code)."""
    return ValidationError(exc.message, code=exc.code)


class EmailField(forms.EmailField):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", EMAIL_MAX_LENGTH)
        kwargs.setdefault(
            "widget", forms.EmailInput(attrs={"autocomplete": "email", "spellcheck": "false"})
        )
        super().__init__(**kwargs)

    def clean(self, value: Any) -> str:
        value = super().clean(value)
        if not value:
            return value
        try:
            return clean_email(value)
        except ServiceError as exc:
            raise _field_error(exc) from None


class NameField(forms.CharField):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", NAME_MAX_LENGTH)
        kwargs.setdefault("required", False)
        kwargs.setdefault("widget", forms.TextInput(attrs={"autocomplete": "name"}))
        super().__init__(**kwargs)

    def clean(self, value: Any) -> str:
        try:
            return clean_name(super().clean(value))
        except ServiceError as exc:
            raise _field_error(exc) from None


class NewPasswordForm(forms.Form):
    """Base of the forms with two password fields (``password``, ``password_confirm``) that must
    match and pass Django's validators (12+ characters)."""

    password_user: User | None = None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        password, confirm = cleaned.get("password"), cleaned.get("password_confirm")
        if password and confirm and password != confirm:
            self.add_error("password_confirm", "The two passwords do not match.")
        elif password:
            user = self.password_user or User(
                email=cleaned.get("email") or "", name=cleaned.get("name") or ""
            )
            try:
                validate_password(password, user=user)
            except ValidationError as exc:
                self.add_error("password", exc)
        return cleaned


class SetupForm(NewPasswordForm):
    email = EmailField(label="Email")
    name = NameField(label="Name", required=True)
    password = _password_field(
        "Password", autocomplete="new-password",
        help_text=password_help(),
    )
    password_confirm = _password_field("Confirm password", autocomplete="new-password")


class LoginForm(forms.Form):
    # A plain CharField: a malformed address is just a failed sign-in, with the same answer.
    email = forms.CharField(
        label="Email", max_length=EMAIL_MAX_LENGTH,
        widget=forms.EmailInput(attrs={"autocomplete": "username", "autofocus": True,
                                       "spellcheck": "false"}),
    )
    password = _password_field("Password", autocomplete="current-password")


class CodeForm(forms.Form):
    code = forms.CharField(
        label="Code", max_length=32,
        widget=forms.TextInput(attrs={
            "autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True,
            "class": "otp-input", "spellcheck": "false", "autocapitalize": "off",
        }),
    )


class BackupCodeForm(forms.Form):
    code = forms.CharField(
        label="Backup code", max_length=32,
        widget=forms.TextInput(attrs={
            "autocomplete": "off", "autofocus": True, "class": "otp-input",
            "spellcheck": "false", "autocapitalize": "off", "placeholder": "xxxx-xxxx",
        }),
    )


class AcceptInvitationForm(NewPasswordForm):
    password = _password_field(
        "Password", autocomplete="new-password",
        help_text=password_help(),
    )
    password_confirm = _password_field("Confirm password", autocomplete="new-password")

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.password_user = user


class PasswordChangeForm(NewPasswordForm):
    current_password = _password_field("Current password", autocomplete="current-password")
    password = _password_field(
        "New password", autocomplete="new-password",
        help_text=password_help(),
    )
    password_confirm = _password_field("Confirm new password", autocomplete="new-password")

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.password_user = user


class ReplaceDeviceForm(forms.Form):
    current_code = forms.CharField(
        label="Code from your current authenticator (or a backup code)", max_length=32,
        widget=forms.TextInput(attrs={"autocomplete": "off", "class": "otp-input",
                                      "inputmode": "numeric"}),
    )
    new_code = forms.CharField(
        label="Code from the new authenticator", max_length=32,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "class": "otp-input",
                                      "inputmode": "numeric"}),
    )


class TenantChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Tenant) -> str:
        return f"{obj.name} ({obj.slug})"


def _tenant_field(form: forms.Form) -> TenantChoiceField:
    field = form.fields["tenant"]
    assert isinstance(field, TenantChoiceField)
    return field


class StaffInviteForm(forms.Form):
    email = EmailField(label="Email")
    name = NameField(label="Name")
    is_superuser = forms.BooleanField(
        label="Instance admin (every tenant, staff management, Django admin)", required=False
    )
    tenant = TenantChoiceField(
        label="Tenant", queryset=Tenant.objects.none(), required=False, to_field_name="slug",
        empty_label="No tenant yet",
    )
    role = forms.ChoiceField(label="Role in that tenant", choices=ROLE_CHOICES, initial="viewer")

    def __init__(self, *args: Any, tenants: QuerySet[Tenant] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if tenants is not None:
            _tenant_field(self).queryset = tenants


class TenantRoleForm(forms.Form):
    tenant = TenantChoiceField(label="Tenant", queryset=Tenant.objects.none(),
                               to_field_name="slug", empty_label=None)
    role = forms.ChoiceField(label="Role", choices=ROLE_CHOICES, initial="viewer")

    def __init__(self, *args: Any, tenants: QuerySet[Tenant], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _tenant_field(self).queryset = tenants


class RoleForm(forms.Form):
    role = forms.ChoiceField(label="Role", choices=ROLE_CHOICES)


class TenantAdminAddForm(forms.Form):
    email = EmailField(label="Email")
    name = NameField(label="Name (for a new invitation)")
    role = forms.ChoiceField(label="Role", choices=ROLE_CHOICES, initial="viewer")
