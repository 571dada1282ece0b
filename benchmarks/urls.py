from django.urls import path

from benchmarks.admin_site import site
from config.urls import urlpatterns as console_urlpatterns

app_name = "adminpanel"
urlpatterns = [path("bench-admin/", site.urls), *console_urlpatterns]
