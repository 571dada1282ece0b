"""The staff sign-in backend: Django's ``ModelBackend``, with the user of each request read
through ``accounts.identity`` (one cache read for the user and their devices)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend

from accounts import identity


class StaffBackend(ModelBackend):
    def get_user(self, user_id: Any) -> Any:
        user = identity.staff_user(user_id)
        return user if user is not None and self.user_can_authenticate(user) else None
