from django.contrib import admin
from django.urls import path

from adminpanel.views import health, home

app_name = "adminpanel"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("", home.home, name="home"),
    path("admin/", admin.site.urls),
]
