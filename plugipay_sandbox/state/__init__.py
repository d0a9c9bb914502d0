"""In-memory sandbox state: the core store plus one module per resource family.

Importing this package imports every family module in it, so each registers its stores, event
kinds and clock-driven work (a new family is a new module; nothing else is edited).
"""

from __future__ import annotations

import importlib
import pkgutil

from plugipay_sandbox.state.core import (
    CURRENCIES,
    FAMILIES,
    FAULT_KINDS,
    ApiError,
    Family,
    Fault,
    SandboxConfig,
    Store,
    event_kinds,
    iso,
    new_id,
    not_found,
    parse_time,
    register,
    shuffled,
)

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "CURRENCIES",
    "FAMILIES",
    "FAULT_KINDS",
    "ApiError",
    "Family",
    "Fault",
    "SandboxConfig",
    "Store",
    "event_kinds",
    "iso",
    "new_id",
    "not_found",
    "parse_time",
    "register",
    "shuffled",
]
