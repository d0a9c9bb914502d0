"""The account an API request acts for (``PLUGIPAY["API_ACCOUNT"]``): reads and creations."""

from __future__ import annotations

import json
from typing import Any

from django.utils.translation import gettext as _
from rest_framework.exceptions import NotFound, ParseError, ValidationError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser

from django_plugipay import accounts
from django_plugipay.conf import app_settings
from django_plugipay.context import acting, current_account_pk
from django_plugipay.exceptions import ConfigurationError
from django_plugipay.models import Account


def request_account(request: Any) -> Any:
    """The account a checkout, a subscription, a payout or a balance of this request belongs
    to: what ``PLUGIPAY["API_ACCOUNT"]`` — a callable ``(request) -> alias | None`` — answers;
    None (the default, or the hook's answer) is the default account. A refund, a cancellation
    or a sync is made with the account of the row it acts on, whatever the hook says."""
    hook = app_settings.API_ACCOUNT
    return hook(request) if hook is not None else None


def in_request_account(queryset: Any) -> Any:
    """The rows of ``queryset`` in the account the request acts for (inside a
    :class:`ForRequestAccount` view: :func:`request_account`, the default account when the
    hook answers None), for staff too: another account's rows are not the request's."""
    return queryset.filter(account_id=current_account_pk())


class StrictJSONParser(JSONParser):
    """DRF's JSON parser, but a body nested too deeply for Python's recursion limit, or a
    string holding a lone surrogate (``"\\ud800"``, which no UTF-8 answer can echo back), is a
    400 like any other malformed JSON."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise ParseError(_("JSON parse error - the body is nested too deeply.")) from exc
        try:
            json.dumps(data, ensure_ascii=False).encode()
        except UnicodeEncodeError as exc:
            raise ParseError(_("JSON parse error - a string holds a lone surrogate.")) from exc
        return data


class ForRequestAccount:
    """A DRF view acting, for the whole request once it is authenticated, for
    :func:`request_account`: a user's rows are read in that account (``for_user``), what the
    request creates is made there (its customer, its credentials), and a row's own calls
    keep the row's account. An id or a query parameter holding a NUL character, which no
    stored value holds and PostgreSQL refuses to compare, is a 404 or a 400."""

    _acting_token: Any = None
    parser_classes = [StrictJSONParser, FormParser, MultiPartParser]

    def initial(self, request: Any, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        if any("\x00" in str(value) for value in kwargs.values()):
            raise NotFound()
        if any("\x00" in "".join([key, *values]) for key, values in request.query_params.lists()):
            raise ValidationError(_("A query parameter holds a NUL character."))
        alias = request_account(request)
        if alias is None:
            return
        try:
            found = accounts.known(alias)
        except Account.DoesNotExist as exc:
            raise ConfigurationError(
                _(
                    "PLUGIPAY['API_ACCOUNT'] answered %(alias)r, an account the project does "
                    "not know."
                )
                % {"alias": alias}
            ) from exc
        self._acting_token = acting.set(found.acting)

    def finalize_response(self, request: Any, response: Any, *args: Any, **kwargs: Any) -> Any:
        if self._acting_token is not None:
            acting.reset(self._acting_token)
            self._acting_token = None
        return super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]
