from django.contrib import admin

from shop.models import Order, Product


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["name", "price_display", "slug"]


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "user",
        "product",
        "amount_display",
        "status",
        "paid_at",
        "receipts_sent",
    ]
    list_filter = ["status"]
    list_select_related = ["user", "product"]
    readonly_fields = ["checkout_session", "paid_at", "receipts_sent"]
