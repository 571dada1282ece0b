"""Parsing the console's webhook forms (the services validate again: the URL's target, types)."""

from __future__ import annotations

from django import forms

from events.services import TENANT_SCOPE_TYPES


class EndpointForm(forms.Form):
    url = forms.CharField(label="URL", max_length=2000, widget=forms.URLInput(attrs={"placeholder": "https://"}))
    description = forms.CharField(label="Description", max_length=200, required=False)
    event_types = forms.MultipleChoiceField(
        label="Event types", required=False, widget=forms.CheckboxSelectMultiple,
        choices=[(t, t) for t in TENANT_SCOPE_TYPES],
        help_text="None chosen: every type.",
    )
    enabled = forms.BooleanField(label="Enabled", required=False, initial=True)


class ReplayForm(forms.Form):
    since = forms.DateTimeField(
        label="Failed since (UTC)", widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
    )
