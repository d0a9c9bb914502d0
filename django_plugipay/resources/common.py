"""What the resource modules share: the ``updatedAt`` field every object carries, and how a
parent row is read when a child locks it."""

from __future__ import annotations

import functools

from django.db import models

from django_plugipay.specs import Timestamp, field

UPDATED_AT = field(Timestamp(), "updatedAt")


@functools.cache
def parent_fields(model: type[models.Model]) -> tuple[str, ...]:
    """Every field of ``model`` but its raw ``data``: a parent locked with these is handed to
    the receivers of its child's signals (``payment.checkout_session`` costs no query), and
    only ``data``, the largest column, is read back if a receiver asks for it."""
    return tuple(f.name for f in model._meta.concrete_fields if f.name not in ("id", "data"))
