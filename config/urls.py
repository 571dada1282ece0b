"""The root URLconf: the console, the tenant portal and the Django admin."""

from django.contrib import admin
from django.urls import include, path

from console.views import home

urlpatterns = [
    # The console's home first: django-ninja mounts its "api-root" (a 404 view) at "" and would
    # answer "/" otherwise; reverse("api:api-root") still gives "/" for its OpenAPI paths.
    path("", home.home),
    path("", include("api.urls")),  # /t/<slug>/auth/v1/ and /api/v1/: before the console's /t/<slug>/
    path("admin/", admin.site.urls),
    path("p/<slug:slug>/", include("portal.urls")),
    path("", include("console.urls")),
]

# Branded status pages, the console's or the portal's look (console.errors).
handler400 = "console.errors.bad_request"
handler403 = "console.errors.permission_denied"
handler404 = "console.errors.page_not_found"
handler500 = "console.errors.server_error"
