from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("plugipay/", include("django_plugipay.urls")),
    path("plugipay/api/", include("django_plugipay.api.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("shop.urls")),
]
