"""A URLconf that forgot ``include("django_plugipay.urls")`` (for plugipay_doctor's tests)."""

from django.contrib import admin
from django.urls import path

urlpatterns = [path("admin/", admin.site.urls)]
