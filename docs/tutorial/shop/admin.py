from django.contrib import admin

from shop.models import Order


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["__str__", "user", "item", "amount", "currency", "status", "paid_at"]
    list_filter = ["status"]
