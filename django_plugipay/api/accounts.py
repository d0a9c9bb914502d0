"""The account an API request acts for (``PLUGIPAY["API_ACCOUNT"]``): reads and creations."""

from __future__ import annotations

import functools
import json
import logging
import re
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.core.signals import got_request_exception
from django.http import Http404
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from rest_framework import status
from rest_framework.exceptions import (
    APIException,
    NotFound,
    ParseError,
    PermissionDenied,
    ValidationError,
)
from rest_framework.response import Response

from django_plugipay import accounts
from django_plugipay.api.drf_messages import csrf_failure
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


class _Strict:
    """Mixed into each of the project's parsers (``DEFAULT_PARSER_CLASSES``, see
    :func:`strict`): what no answer could carry is a 400 like any other malformed body, never
    a 500: a body nested too deeply for Python's recursion limit, a charset that cannot
    decode it (``charset=punycode``), or a string holding a lone surrogate (``"\\ud800"``,
    which JSON escapes and UTF-7 encode, and which no UTF-8 answer can echo back)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            parsed = super().parse(stream, media_type, parser_context)  # type: ignore[misc]
        except RecursionError as exc:
            raise ParseError(_("Parse error - the body is nested too deeply.")) from exc
        except ParseError as exc:  # DRF's parsers say why in English alone
            detail = str(exc.detail)
            where = exc.__context__
            if isinstance(where, json.JSONDecodeError):  # Python's words are English too
                raise ParseError(
                    _(
                        "Parse error - the body is not valid JSON (line %(line)d, "
                        "column %(column)d)."
                    )
                    % {"line": where.lineno, "column": where.colno}
                ) from exc
            for prefix, message in (
                ("JSON parse error - ", _("Parse error - the body is not valid JSON: %(detail)s")),
                (
                    "Multipart form parse error - ",
                    _("Parse error - the multipart body cannot be read: %(detail)s"),
                ),
            ):
                if detail.startswith(prefix):
                    raise ParseError(message % {"detail": detail.removeprefix(prefix)}) from exc
            raise
        except UnicodeError as exc:
            raise ParseError(_("Parse error - the body cannot be read in its charset.")) from exc
        if parsed is None:  # a body of JSON null: DRF answers "No data provided", in English
            raise ParseError(_("Parse error - the body is null, not an object."))
        if not _encodable(getattr(parsed, "data", parsed)):
            raise ParseError(_("Parse error - a string holds a lone surrogate."))
        return parsed


@functools.cache
def strict(parser_class: type) -> type:
    """``parser_class`` made strict (:class:`_Strict`), still a subclass of it: DRF reads a
    JSON or form body within ``DATA_UPLOAD_MAX_MEMORY_SIZE`` only for those parsers."""
    return type(f"Strict{parser_class.__name__}", (_Strict, parser_class), {})


#: Django's ``get_object_or_404`` message, English only, naming the model class
_NO_MATCH = re.compile(r"No \w+ matches the given query\.")


class BodyTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "body_too_large"
    default_detail = gettext_lazy("The request body is larger than this site accepts.")


def _encodable(data: Any) -> bool:
    """Can every key and value of parsed ``data`` be written as UTF-8?"""
    if hasattr(data, "lists"):  # a QueryDict: every value of each key
        data = dict(data.lists())
    try:
        json.dumps(data, ensure_ascii=False, default=str).encode()
    except UnicodeEncodeError:
        return False
    return True


class ForRequestAccount:
    """A DRF view acting, for the whole request once it is authenticated, for
    :func:`request_account`: a user's rows are read in that account (``for_user``), what the
    request creates is made there (its customer, its credentials), and a row's own calls
    keep the row's account. An id or a query parameter holding a NUL character, which no
    stored value holds and PostgreSQL refuses to compare, is a 404 or a 400."""

    _acting_token: Any = None

    def get_parsers(self) -> list:
        return [strict(parser)() for parser in self.parser_classes]  # type: ignore[attr-defined]

    def handle_exception(self, exc: Exception) -> Any:
        """As the API's other errors are: a body over Django's limits is a JSON 413 (too
        large) or 400 (too many fields), not Django's HTML 400 page; Django's English 404 of
        ``get_object_or_404``, naming the model, is DRF's translated one; DRF's English CSRF
        refusal is said in the request's language."""
        if isinstance(exc, Http404) and _NO_MATCH.fullmatch(str(exc)):
            exc = NotFound()  # DRF's "Not found.", translated, not Django's English naming a model
        elif isinstance(exc, RequestDataTooBig):
            exc = BodyTooLarge()
        elif isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
            exc = ParseError(_("The request body has more fields than this site accepts."))
        elif isinstance(exc, PermissionDenied) and (said := csrf_failure(str(exc.detail))):
            exc = PermissionDenied(said)
        try:
            return super().handle_exception(exc)  # type: ignore[misc]
        except Exception as uncaught:
            if settings.DEBUG or uncaught is not exc:
                raise  # Django's debug page for the developer
            return self._server_error(exc)

    def _server_error(self, exc: Exception) -> Any:
        """An error of the project's code or setup (a hook that raised, a database away) as
        the API's others are: a JSON 500 in the request's language, logged and signalled as
        Django does for its own 500 page (``django.request``, ``got_request_exception``)."""
        request = self.request  # type: ignore[attr-defined]
        logging.getLogger("django.request").error(
            "Internal Server Error: %s",
            request.path,
            exc_info=exc,
            extra={"status_code": 500, "request": request},
        )
        got_request_exception.send(sender=None, request=request)
        detail = _("A server error occurred; it is logged for the site's developers.")
        return Response({"detail": detail}, status=status.HTTP_500_INTERNAL_SERVER_ERROR)

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
