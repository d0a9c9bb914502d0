from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),  # log in, log out
    path("plugipay/", include("django_plugipay.urls")),  # the webhook: plugipay/webhook/
    path("", include("shop.urls")),
]
