from django.urls import path

from shop import membership, views

app_name = "shop"

urlpatterns = [
    path("", views.home, name="home"),
    path("shop-for/", views.pick_account, name="pick-account"),
    path("buy/<slug:slug>/", views.buy, name="buy"),
    path("orders/", views.orders, name="orders"),
    path("orders/<int:pk>/thanks/", views.success, name="success"),
    path("membership/", membership.membership, name="membership"),
    path("membership/subscribe/", membership.subscribe, name="subscribe"),
    path("membership/clock/", membership.advance_clock, name="advance-clock"),
    path("members/", membership.members, name="members"),
]
