"""Parsing of the portal's forms. Passwords are checked against the tenant's rules here so a
bad password never uses up a link."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core import validators
from django.core.exceptions import ValidationError

from accounts.models import AppUser
from core.emails import EMAIL_MAX_LENGTH
from core.errors import Invalid
from core.text import NAME_MAX_LENGTH, REASON_MAX_LENGTH, has_forbidden_chars, without_forbidden_chars
from portal.services.auth import MAX_PASSWORD_LENGTH, validate_app_password
from tenants.models import Tenant


def one_line(value: str, *, label: str) -> str:
    """Runs of spaces collapsed; the characters ``core.text`` refuses (control characters,
    direction overrides: they disguise what is shown) refused."""
    value = " ".join((value or "").split())
    if has_forbidden_chars(value):
        raise ValidationError(f"{label} contains invisible control characters; remove them.")
    return value


class PortalEmailField(forms.CharField):
    """An email address typed into the portal: the characters ``core.text`` refuses (direction
    overrides, control characters) are refused with a clear message, and they are never echoed
    back: the re-rendered form shows the value without them."""

    default_error_messages = {
        "forbidden": "An email address cannot contain control characters or text-direction "
                     "overrides; remove them.",
    }

    def __init__(self, *, syntax: bool, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", EMAIL_MAX_LENGTH)
        super().__init__(**kwargs)
        if syntax:
            self.validators.append(validators.validate_email)

    def to_python(self, value: Any) -> str:
        text = super().to_python(value) or ""
        if has_forbidden_chars(text):
            raise ValidationError(self.error_messages["forbidden"], code="forbidden")
        return text

    def bound_data(self, data: Any, initial: Any) -> Any:
        if isinstance(data, str):
            return without_forbidden_chars(data)
        return super().bound_data(data, initial)


class LoginForm(forms.Form):
    email = PortalEmailField(
        syntax=False, widget=forms.EmailInput(attrs={"autocomplete": "username", "autofocus": True})
    )
    password = forms.CharField(max_length=MAX_PASSWORD_LENGTH, strip=False,
                               widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))


class CodeForm(forms.Form):
    code = forms.CharField(
        max_length=40,
        label="Code",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "text",
                                      "autofocus": True, "class": "otp-input"}),
        help_text="The 6-digit code from your authenticator app, or one of your recovery codes.",
    )


class EmailForm(forms.Form):
    email = PortalEmailField(
        syntax=True, widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True})
    )


class SetPasswordForm(forms.Form):
    password1 = forms.CharField(label="New password", max_length=MAX_PASSWORD_LENGTH, strip=False,
                                widget=forms.PasswordInput(attrs={"autocomplete": "new-password", "autofocus": True}))
    password2 = forms.CharField(label="Repeat it", max_length=MAX_PASSWORD_LENGTH, strip=False,
                                widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))

    def __init__(self, *args: Any, tenant: Tenant, user: AppUser | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tenant, self.user = tenant, user

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        p1, p2 = data.get("password1"), data.get("password2")
        if p1 and p2 and p1 != p2:
            self.add_error("password2", "The two passwords differ.")
        elif p1:
            try:
                validate_app_password(tenant=self.tenant, password=p1, user=self.user)
            except Invalid as exc:
                for message in exc.messages:
                    self.add_error("password1", message)
        return data


class ChangePasswordForm(SetPasswordForm):
    current = forms.CharField(label="Current password", max_length=MAX_PASSWORD_LENGTH, strip=False,
                              widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))
    field_order = ["current", "password1", "password2"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["password1"].widget.attrs.pop("autofocus", None)


class ProfileForm(forms.Form):
    name = forms.CharField(max_length=NAME_MAX_LENGTH, required=False)

    def clean_name(self) -> str:
        return one_line(self.cleaned_data["name"], label="The name")


class PasswordConfirmForm(forms.Form):
    password = forms.CharField(label="Current password", max_length=MAX_PASSWORD_LENGTH, strip=False,
                               widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))


class ReasonForm(forms.Form):
    reason = forms.CharField(min_length=3, max_length=REASON_MAX_LENGTH)

    def clean_reason(self) -> str:
        return one_line(self.cleaned_data["reason"], label="The reason")
