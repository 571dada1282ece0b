"""``django.contrib.admin`` with the console's site; listed in INSTALLED_APPS instead of it.

Kept apart from ``admin_site`` because app configs are imported before models are ready.
"""

from django.contrib.admin.apps import AdminConfig


class ConsoleAdminConfig(AdminConfig):
    default_site = "console.admin_site.ConsoleAdminSite"
