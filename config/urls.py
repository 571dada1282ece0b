"""The root URLconf: the console, the tenant portal and the Django admin."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("p/<slug:slug>/", include("portal.urls")),
    path("", include("console.urls")),
]
