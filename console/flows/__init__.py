"""User journeys of the console that span several requests (allauth's "flows"): the session
steps live here once, the views parse forms and render."""
