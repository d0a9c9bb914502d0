from django.urls import path

from shop import views

app_name = "shop"

urlpatterns = [
    path("", views.home, name="home"),
    path("buy/<slug:slug>/", views.buy, name="buy"),
    path("orders/", views.orders, name="orders"),
    path("orders/<int:pk>/thanks/", views.success, name="success"),
]
