"""The Django admin behind the console's own sign-in: instance admins with a verified TOTP only.

Installed through ``accounts.apps.ConsoleAdminConfig`` (``default_site``), so every
``admin.site.register`` call lands here. The admin has no sign-in form of its own: the console's
(password + TOTP) is the only way in, and the staff middleware has already refused unverified
sessions before a request gets here.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from console.staff_session import is_verified


class ConsoleAdminSite(admin.AdminSite):
    site_header = "Admin Console · Django admin"
    site_title = "Django admin"
    index_title = "Control database"
    enable_nav_sidebar = False

    def has_permission(self, request: HttpRequest) -> bool:
        user = request.user
        return bool(user.is_active and user.is_superuser and is_verified(user))

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if request.user.is_authenticated:
            raise PermissionDenied("The Django admin is for instance admins.")
        return redirect_to_login(request.get_full_path(), login_url=reverse("console:login"))

    # The stub says TemplateResponse; Django's own logout answers any HttpResponse (a redirect).
    def logout(  # type: ignore[override]
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        from console.views.auth import logout_view

        return logout_view(request)

