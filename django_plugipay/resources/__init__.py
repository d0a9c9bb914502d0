"""The mirrored Plugipay resources: one module per resource family, each declaring its specs.

Every module of this package is imported when the app is ready (:func:`discover`), and
declaring a :class:`~django_plugipay.specs.ResourceSpec` subclass registers it: a new resource
is a new module here, never an entry in a list. A module imports the specs, the models, the
signals, the client and :mod:`django_plugipay.db`, never the services: what follows an apply
step is handed back to the engine as :class:`~django_plugipay.specs.Apply` and
:class:`~django_plugipay.specs.Move` steps.
"""

from __future__ import annotations

import importlib
import pkgutil


def discover() -> list[str]:
    """Import every module of this package (each registers its specs); their names."""
    names = [f"{__name__}.{info.name}" for info in pkgutil.iter_modules(__path__)]
    for name in names:
        importlib.import_module(name)
    return names
