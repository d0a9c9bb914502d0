"""A project mounting the app's API under its own ``api/`` prefix, beside its own endpoints."""

from django.http import JsonResponse
from django.urls import include, path


def orders(request):
    return JsonResponse({"orders": []})


urlpatterns = [
    path("api/", include("django_plugipay.api.urls")),
    path("api/", include([path("orders/", orders)])),
]
