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


def discover(package: str = __name__) -> list[str]:
    """Import every module of ``package`` (by default this one; each module registers its
    specs and its client endpoint); return their names."""
    path = importlib.import_module(package).__path__
    names = [f"{package}.{info.name}" for info in pkgutil.iter_modules(path)]
    for name in names:
        importlib.import_module(name)
    return names
