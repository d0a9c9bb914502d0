"""What the resource modules share: the ``updatedAt`` field every object carries."""

from __future__ import annotations

from django_plugipay.specs import Timestamp, field

UPDATED_AT = field(Timestamp(), "updatedAt")
