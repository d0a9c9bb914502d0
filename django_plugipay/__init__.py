"""django-plugipay: take Plugipay payments in Django."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["durable_receiver"]


def __getattr__(name: str) -> Any:
    # ``durable_receiver`` needs the models, so it is loaded on first use (in a receivers
    # module imported from an app's ``ready()``), not when Django imports this package.
    if name == "durable_receiver":
        from django_plugipay.services.deliveries import durable_receiver

        return durable_receiver
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
