from importlib.util import find_spec

from django.contrib import admin
from django.urls import include, path

from tests.settings import HAS_DRF

urlpatterns = [
    path("admin/", admin.site.urls),
    path("plugipay/", include("django_plugipay.urls")),
]
if HAS_DRF and find_spec("django_plugipay.api.urls"):
    urlpatterns.append(path("plugipay/api/", include("django_plugipay.api.urls")))
