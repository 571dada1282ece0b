"""Parsing the console's webhook forms (the services validate again: the URL's target, types)."""

from __future__ import annotations

from typing import Any

from django import forms

from events.services import types_for


class EndpointForm(forms.Form):
    url = forms.CharField(label="URL", max_length=2000, widget=forms.URLInput(attrs={"placeholder": "https://"}))
    description = forms.CharField(label="Description", max_length=200, required=False)
    event_types = forms.MultipleChoiceField(
        label="Event types", required=False, widget=forms.CheckboxSelectMultiple,
        help_text="None chosen: every type.",
    )
    enabled = forms.BooleanField(label="Enabled", required=False, initial=True)

    def __init__(self, *args: Any, scope: str = "tenant", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["event_types"]
        assert isinstance(field, forms.MultipleChoiceField)  # noqa: S101 - declared above
        field.choices = [(t, t) for t in types_for(scope)]


class ReplayForm(forms.Form):
    since = forms.DateTimeField(
        label="Failed since (UTC)", widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
    )
