"""Parsing of the portal's forms. Passwords are checked against the tenant's rules here so a
bad password never uses up a link."""

from __future__ import annotations

import re
import unicodedata

from django import forms
from django.core.exceptions import ValidationError

from portal.services.auth import MAX_PASSWORD_LENGTH, validate_app_password

_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f]")


def clean_text(value: str, *, label: str) -> str:
    """Refuse control characters and bidirectional overrides (they disguise what is shown)."""
    value = " ".join((value or "").split())
    if _BIDI.search(value) or any(unicodedata.category(c) == "Cc" for c in value):
        raise ValidationError(f"{label} contains invisible control characters; remove them.")
    return value


class LoginForm(forms.Form):
    email = forms.CharField(
        max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "username", "autofocus": True})
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
    email = forms.EmailField(
        max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True})
    )


class SetPasswordForm(forms.Form):
    password1 = forms.CharField(label="New password", max_length=MAX_PASSWORD_LENGTH, strip=False,
                                widget=forms.PasswordInput(attrs={"autocomplete": "new-password", "autofocus": True}))
    password2 = forms.CharField(label="Repeat it", max_length=MAX_PASSWORD_LENGTH, strip=False,
                                widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))

    def __init__(self, *args, tenant, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.tenant, self.user = tenant, user

    def clean(self):
        data = super().clean()
        p1, p2 = data.get("password1"), data.get("password2")
        if p1 and p2 and p1 != p2:
            self.add_error("password2", "The two passwords differ.")
        elif p1:
            try:
                validate_app_password(tenant=self.tenant, password=p1, user=self.user)
            except ValidationError as exc:
                self.add_error("password1", exc)
        return data


class ChangePasswordForm(SetPasswordForm):
    current = forms.CharField(label="Current password", max_length=MAX_PASSWORD_LENGTH, strip=False,
                              widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))
    field_order = ["current", "password1", "password2"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["password1"].widget.attrs.pop("autofocus", None)


class ProfileForm(forms.Form):
    name = forms.CharField(max_length=150, required=False)

    def clean_name(self) -> str:
        return clean_text(self.cleaned_data["name"], label="The name")


class PasswordConfirmForm(forms.Form):
    password = forms.CharField(label="Current password", max_length=MAX_PASSWORD_LENGTH, strip=False,
                               widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))


class ReasonForm(forms.Form):
    reason = forms.CharField(min_length=3, max_length=500)

    def clean_reason(self) -> str:
        return clean_text(self.cleaned_data["reason"], label="The reason")
