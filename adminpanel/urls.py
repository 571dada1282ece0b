from django.contrib import admin
from django.urls import path

from adminpanel.views import health, home, switch

app_name = "adminpanel"

# Each area adds its routes in its own block; keep the blocks apart (several people edit this).
urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("", home.home, name="home"),
    path("switch/", switch.tenant_switch, name="tenant-switch"),
    path("admin/", admin.site.urls),
]

# --- staff access (issue 3) ---

# --- users console (issue 4) ---

# --- portal and impersonation (issue 5) ---

# --- tenants, settings, audit, dashboards (issue 6) ---
