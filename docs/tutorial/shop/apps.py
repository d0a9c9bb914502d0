from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "shop"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Importing the module connects its @receiver functions. Without this import they
        # are never connected and nothing marks an order paid.
        from shop import receivers  # noqa: F401
