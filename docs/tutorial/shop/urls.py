from django.urls import path

from shop import views

app_name = "shop"

urlpatterns = [
    path("", views.home, name="home"),
    path("buy/<slug:item>/", views.buy, name="buy"),
    path("orders/<int:order_id>/thanks/", views.thanks, name="thanks"),
]
