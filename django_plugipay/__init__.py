"""django-plugipay: take Plugipay payments in Django."""

__version__ = "0.1.0"
