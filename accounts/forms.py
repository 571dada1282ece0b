"""Parsing and field validation for the staff pages. Rules live in the services."""

from __future__ import annotations

from django import forms
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError

from accounts.models import User
from accounts.services.staff import clean_email, clean_name
from core.access import ROLES
from core.policy import policy
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


class EmailField(forms.EmailField):
    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 254)
        kwargs.setdefault(
            "widget", forms.EmailInput(attrs={"autocomplete": "email", "spellcheck": "false"})
        )
        super().__init__(**kwargs)

    def clean(self, value):
        value = super().clean(value)
        return clean_email(value) if value else value


class NameField(forms.CharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 150)
        kwargs.setdefault("required", False)
        kwargs.setdefault("widget", forms.TextInput(attrs={"autocomplete": "name"}))
        super().__init__(**kwargs)

    def clean(self, value):
        return clean_name(super().clean(value))


class NewPasswordMixin:
    """Two password fields that must match and pass Django's validators (12+ characters)."""

    password_user: User | None = None

    def clean(self):
        cleaned = super().clean()  # type: ignore[misc]
        password, confirm = cleaned.get("password"), cleaned.get("password_confirm")
        if password and confirm and password != confirm:
            self.add_error("password_confirm", "The two passwords do not match.")  # type: ignore[attr-defined]
        elif password:
            user = self.password_user or User(
                email=cleaned.get("email") or "", name=cleaned.get("name") or ""
            )
            try:
                validate_password(password, user=user)
            except ValidationError as exc:
                self.add_error("password", exc)  # type: ignore[attr-defined]
        return cleaned


class SetupForm(NewPasswordMixin, forms.Form):
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
        label="Email", max_length=254,
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


class AcceptInvitationForm(NewPasswordMixin, forms.Form):
    password = _password_field(
        "Password", autocomplete="new-password",
        help_text=password_help(),
    )
    password_confirm = _password_field("Confirm password", autocomplete="new-password")

    def __init__(self, *args, user: User, **kwargs):
        super().__init__(*args, **kwargs)
        self.password_user = user


class PasswordChangeForm(NewPasswordMixin, forms.Form):
    current_password = _password_field("Current password", autocomplete="current-password")
    password = _password_field(
        "New password", autocomplete="new-password",
        help_text=password_help(),
    )
    password_confirm = _password_field("Confirm new password", autocomplete="new-password")

    def __init__(self, *args, user: User, **kwargs):
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

    def __init__(self, *args, tenants=None, **kwargs):
        super().__init__(*args, **kwargs)
        if tenants is not None:
            self.fields["tenant"].queryset = tenants


class TenantRoleForm(forms.Form):
    tenant = TenantChoiceField(label="Tenant", queryset=Tenant.objects.none(),
                               to_field_name="slug", empty_label=None)
    role = forms.ChoiceField(label="Role", choices=ROLE_CHOICES, initial="viewer")

    def __init__(self, *args, tenants, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tenant"].queryset = tenants


class RoleForm(forms.Form):
    role = forms.ChoiceField(label="Role", choices=ROLE_CHOICES)


class TenantAdminAddForm(forms.Form):
    email = EmailField(label="Email")
    name = NameField(label="Name (for a new invitation)")
    role = forms.ChoiceField(label="Role", choices=ROLE_CHOICES, initial="viewer")
