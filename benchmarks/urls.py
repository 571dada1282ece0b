from django.urls import path

from adminpanel.urls import urlpatterns as console_urlpatterns
from benchmarks.admin_site import site

app_name = "adminpanel"
urlpatterns = [path("bench-admin/", site.urls), *console_urlpatterns]
