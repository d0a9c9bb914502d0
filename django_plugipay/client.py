"""``PlugipayClient``: signed requests, the envelope, typed errors, retries and pagination."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import requests
from django.utils import translation
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from django_plugipay.conf import CREDENTIAL_FIX, app_settings, credential_problem
from django_plugipay.context import acting
from django_plugipay.exceptions import APIError, ConfigurationError, PlugipayError, TransientError

logger = logging.getLogger(__name__)

USER_AGENT = "django-plugipay/0.1"
RETRY_AFTER_CAP = 60.0
BACKOFF_CAP = 8.0
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
#: How long Plugipay answers a repeated ``Idempotency-Key`` with the first answer instead of
#: running the write again (24 h, per workspace).
IDEMPOTENCY_WINDOW = dt.timedelta(hours=24)
#: A write whose answer was lost is sent again with its key only this long after it was first
#: made: the window less an hour, for the clocks and the call itself. Past it, a repeat could
#: make a second object; the write is looked for at Plugipay instead.
RESEND_WINDOW = IDEMPOTENCY_WINDOW - dt.timedelta(hours=1)
#: the header a platform key names the account it acts for with
ON_BEHALF_OF_HEADER = "X-Plugipay-On-Behalf-Of"
#: the last sentence of a credentials error (the doctor leaves it out: it is the doctor)
DOCTOR_ADVICE = "Run `manage.py plugipay_doctor` to check the whole setup."
#: the last sentence of an unreachable-loopback error (the doctor says more precisely what to do)
SANDBOX_ADVICE = (
    "That is the local sandbox's address: is it running? Start it with "
    "`python manage.py plugipay_sandbox`."
)


def new_idempotency_key() -> str:
    return f"idem_{uuid.uuid4()}"


def header_safe(key: str, limit: int = 255) -> bool:
    """Does an HTTP header carry ``key`` as written: at most ``limit`` characters of
    printable ASCII without spaces at its ends? (A tab, a trailing space or a non-ASCII letter
    would be dropped, refused or re-encoded on the way, and a signature over it would not
    verify.)"""
    return len(key) <= limit and key.isascii() and key.isprintable() and key == key.strip()


def header_key(key: str) -> str:
    """The ``Idempotency-Key`` header sent for ``key``: the key itself when a header carries
    it as written (:func:`header_safe`), else a digest of it — the same for every send of the
    key, so retries still match at Plugipay."""
    if header_safe(key):
        return key
    return "idem_" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def string_to_sign(
    method: str, path: str, timestamp: str, body: bytes, idempotency_key: str | None
) -> str:
    """Scheme A: the five lines of ``plugipay-api.md`` §2.2 (the last only with a key)."""
    lines = [method.upper(), path, timestamp, hashlib.sha256(body).hexdigest()]
    if idempotency_key:
        lines.append(idempotency_key)
    return "\n".join(lines)


def sign(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def query_string(params: Mapping[str, Any] | None) -> str:
    """Encode query parameters once, so the signed path is exactly the path sent."""
    if not params:
        return ""
    pairs = []
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        pairs.append(f"{quote(str(key), safe='')}={quote(str(value), safe='')}")
    return "?" + "&".join(pairs) if pairs else ""


class PlugipayClient:
    """A client for the Plugipay API on a pooled ``requests.Session``.

    Writes always carry an ``Idempotency-Key`` (the caller's, or one generated per call and
    reused by every retry), so retrying a write after a timeout cannot apply it twice. GETs and
    writes are retried on transient failures with exponential backoff and jitter, honouring
    ``Retry-After``; a 4xx is raised at once as :class:`APIError`.
    """

    def __init__(
        self,
        *,
        key_id: str | None = None,
        secret: str | None = None,
        api_key: str | None = None,
        base_url: str = "https://plugipay.com",
        api_prefix: str = "/api/v1",
        timeout: float = 30,
        max_retries: int = 3,
        backoff: float = 0.5,
        session: requests.Session | None = None,
        on_behalf_of: str | None = None,
    ) -> None:
        if not api_key and not (key_id and secret):
            raise ConfigurationError(
                "Plugipay credentials are missing: set PLUGIPAY['KEY_ID'] and ['SECRET'] "
                "(or ['API_KEY'])."
            )
        for label, value in (("key id", key_id), ("secret", secret), ("API key", api_key)):
            problem = credential_problem(value)
            if problem is not None:  # else requests fails later, e.g. with a UnicodeEncodeError
                raise ConfigurationError(f"The Plugipay {label} {problem}. {CREDENTIAL_FIX}")
        self.key_id, self.secret, self.api_key = key_id, secret, api_key
        self.base_url = base_url.rstrip("/")
        self.api_prefix = "/" + api_prefix.strip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.session = session or self._new_session()
        #: the ``acc_…`` id a platform key acts for (``X-Plugipay-On-Behalf-Of``), or None
        self.on_behalf_of = on_behalf_of

    def for_merchant(self, account_id: str) -> PlugipayClient:
        """A client with the same (platform) key acting on behalf of ``account_id``; it
        shares this client's connection pool."""
        clone = copy.copy(self)
        clone.on_behalf_of = account_id
        return clone

    @classmethod
    def from_settings(cls, **overrides: Any) -> PlugipayClient:
        options = _options_from_settings()
        _refuse_unsendable(None, {k: v for k, v in options.items() if k not in overrides})
        return cls(**{**options, **overrides})

    @staticmethod
    def _new_session() -> requests.Session:
        session = requests.Session()
        # Retries live in request(): each attempt needs a fresh timestamp and signature.
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=16, max_retries=Retry(total=0))
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.headers.update({"Accept": "application/json", "User-Agent": USER_AGENT})
        return session

    # ── the request loop ──────────────────────────────────────────────────────

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        idempotency_key: str | None = None,
    ) -> tuple[Any, dict[str, Any]]:
        """Send one logical call; return the envelope's ``(data, meta)``."""
        method = method.upper()
        signed_path = self.api_prefix + path + query_string(params)
        body = b"" if json_body is None else json.dumps(json_body, separators=(",", ":")).encode()
        if method in WRITE_METHODS and not idempotency_key:
            idempotency_key = new_idempotency_key()
        elif idempotency_key:
            idempotency_key = header_key(idempotency_key)
        attempt = 0
        while True:
            try:
                return self._send(method, signed_path, body, idempotency_key)
            except APIError as exc:
                # after an attempt that got no answer, a refusal may not be the whole story:
                # that attempt may have made what this one was refused (a 401 after a timeout)
                exc.after_retry = attempt > 0
                raise
            except TransientError as exc:
                if attempt >= self.max_retries:
                    raise
                delay = self._delay(attempt, exc.retry_after)
                logger.warning(
                    "plugipay %s %s failed (%s); retry %d in %.2fs",
                    method,
                    signed_path,
                    exc.code,
                    attempt + 1,
                    delay,
                    extra={
                        "method": method,
                        "path": signed_path,
                        "attempt": attempt + 1,
                        "request_id": exc.request_id,
                    },
                )
                time.sleep(delay)
                attempt += 1

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), RETRY_AFTER_CAP)
        base = min(self.backoff * (2**attempt), BACKOFF_CAP)
        return base / 2 + random.uniform(0, base / 2)  # noqa: S311 - jitter, not crypto

    def _headers(
        self, method: str, path: str, body: bytes, idempotency_key: str | None
    ) -> dict[str, str]:
        headers: dict[str, str] = {}
        if body:
            headers["Content-Type"] = "application/json"
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        if self.on_behalf_of:
            headers[ON_BEHALF_OF_HEADER] = self.on_behalf_of
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
            return headers
        timestamp = str(int(time.time()))
        assert self.secret is not None
        signature = sign(
            self.secret, string_to_sign(method, path, timestamp, body, idempotency_key)
        )
        headers["Authorization"] = (
            f"Plugipay-HMAC-SHA256 keyId={self.key_id}, scope=*, signature={signature}"
        )
        headers["X-Plugipay-Timestamp"] = timestamp
        return headers

    def _send(
        self, method: str, path: str, body: bytes, idempotency_key: str | None
    ) -> tuple[Any, dict[str, Any]]:
        headers = self._headers(method, path, body, idempotency_key)
        started = time.monotonic()
        try:
            response = self.session.request(
                method,
                self.base_url + path,
                data=body or None,
                headers=headers,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.Timeout as exc:
            raise TransientError(
                f"Plugipay at {self.base_url} did not answer {method} {path} within "
                f"{self.timeout}s.",
                code="timeout",
            ) from exc
        except requests.ConnectionError as exc:
            raise TransientError(
                f"Could not reach Plugipay at {self.base_url} ({method} {path}): "
                f"{_reason(exc)}. {self._reach_hint()}",
                code="network_error",
            ) from exc
        duration_ms = int((time.monotonic() - started) * 1000)
        envelope = self._parse(response)
        raw_meta = envelope.get("meta")
        meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
        request_id = meta.get("requestId") or response.headers.get("X-Request-Id")
        logger.info(
            "plugipay %s %s -> %s in %dms",
            method,
            path,
            response.status_code,
            duration_ms,
            extra={
                "method": method,
                "path": path,
                "status": response.status_code,
                "duration_ms": duration_ms,
                "request_id": request_id,
            },
        )
        error = envelope.get("error")
        if response.status_code >= 400 or error:
            failure = self._error(response, error if isinstance(error, dict) else {}, request_id)
            if response.status_code == 401:
                failure.message = f"{failure.message} {self._credentials_hint()}"
                failure.args = (failure.message,)
            raise failure
        return envelope.get("data"), meta

    def _credentials_hint(self) -> str:
        if self.api_key:
            used = f"PLUGIPAY['API_KEY'] ({_key_kind(self.api_key)})"
        else:
            used = f"PLUGIPAY['KEY_ID'] {self.key_id!r} ({_key_kind(self.key_id)}) and ['SECRET']"
        return (
            f"Plugipay at {self.base_url} refused the credentials: check {used} — the key id "
            "and its secret must be the same pair from the dashboard, a test key (pk_test_…) "
            "only works in test mode and a live key (pk_live_…) only live, and the server's "
            f"clock must be right. {DOCTOR_ADVICE}"
        )

    def _reach_hint(self) -> str:
        host = urlsplit(self.base_url).hostname or ""
        if host in ("127.0.0.1", "localhost", "::1"):
            return SANDBOX_ADVICE
        return "Check PLUGIPAY['BASE_URL'] and this server's network access to it."

    @staticmethod
    def _parse(response: requests.Response) -> dict[str, Any]:
        if response.status_code == 204 or not response.content:
            return {}
        try:
            envelope = response.json()
        except ValueError:
            if response.status_code >= 500:
                envelope = {}
            else:
                raise APIError(
                    f"Plugipay answered HTTP {response.status_code} with a non-JSON body.",
                    status=response.status_code,
                    code="invalid_response",
                ) from None
        return envelope if isinstance(envelope, dict) else {"data": envelope}

    @staticmethod
    def _error(
        response: requests.Response, error: dict[str, Any], request_id: str | None
    ) -> PlugipayError:
        status = response.status_code
        code = str(error.get("code") or "unknown")
        message = str(error.get("message") or f"HTTP {status}")
        kwargs: dict[str, Any] = {
            "status": status,
            "code": code,
            "request_id": request_id,
            "field": error.get("field"),
        }
        if status == 429 or status >= 500:
            retry_after = response.headers.get("Retry-After")
            seconds = float(retry_after) if retry_after and retry_after.isdigit() else None
            return TransientError(message, retry_after=seconds, **kwargs)
        details = error.get("details")
        return APIError(message, details=details if isinstance(details, dict) else None, **kwargs)

    # ── pagination ────────────────────────────────────────────────────────────

    def paginate(self, path: str, params: Mapping[str, Any] | None = None) -> Iterator[dict]:
        """Iterate every item of a list endpoint, reading either pagination form."""
        query = dict(params or {})
        while True:
            data, meta = self.request("GET", path, params=query)
            yield from data or []
            raw_page = meta.get("page")
            page: dict[str, Any] = raw_page if isinstance(raw_page, dict) else {}
            cursor = meta.get("cursor") or page.get("nextCursor")
            has_more = meta.get("hasMore", page.get("hasMore", False))
            if not has_more or not cursor:
                return
            query["cursor"] = cursor

    # ── resources ─────────────────────────────────────────────────────────────

    def _get(self, path: str) -> dict[str, Any]:
        return self.request("GET", path)[0]

    def _post(self, path: str, body: dict[str, Any], idempotency_key: str | None = None):
        return self.request("POST", path, json_body=body, idempotency_key=idempotency_key)[0]

    # The resources' create/get/update/list/action calls are not written here one per
    # resource: each resource module declares its collection with :func:`endpoint`, and
    # ``get_customer(id)``, ``create_refund(body, idempotency_key=…)``, ``list_plans()``,
    # ``cancel_checkout_session(id)``, ``invoice_action(id, "void")``… are read from that table.

    if TYPE_CHECKING:  # the table's methods are set on the class when a resource declares them

        def __getattr__(self, name: str) -> Any: ...

    def add_price(
        self, plan_id: str, body: dict[str, Any], *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """``POST /plans/{id}/prices``: one more price of the plan."""
        return self._post(f"{ENDPOINTS['plan'].item(plan_id)}/prices", body, idempotency_key)

    def invoice_document(self, invoice_id: str, kind: str) -> requests.Response:
        """The invoice as ``html`` or ``pdf``: the signed, streamed response (the caller
        closes it). Raises like any other call when Plugipay answers an error."""
        return self.document("invoice", invoice_id, kind)

    def receipt_document(self, receipt_id: str, kind: str) -> requests.Response:
        """The receipt as ``html`` or ``pdf``, like :meth:`invoice_document`."""
        return self.document("receipt", receipt_id, kind)

    def document(self, resource: str, object_id: str, kind: str) -> requests.Response:
        """``GET /<collection>/{id}/<resource>.<kind>``: a document of an object, signed and
        streamed (the caller closes the response), asked for in the active language (the
        reader's: ``Accept-Language``)."""
        collection = f"/{resource}s"
        path = self.api_prefix + f"{collection}/{quote(object_id, safe='')}/{resource}.{kind}"
        headers = self._headers("GET", path, b"", None)
        language = translation.get_language()
        if language:
            headers["Accept-Language"] = language
        try:
            response = self.session.get(
                self.base_url + path, headers=headers, timeout=self.timeout, stream=True
            )
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise TransientError(
                f"Could not fetch {resource} {object_id} from Plugipay at {self.base_url}: "
                f"{_reason(exc)}.",
                code="network_error",
            ) from exc
        if response.status_code >= 400:
            with response:
                envelope = self._parse(response)
            error = envelope.get("error")
            raise self._error(response, error if isinstance(error, dict) else {}, None)
        return response

    def list_webhook_endpoints(self) -> list[dict[str, Any]]:
        endpoints = self.request("GET", "/webhooks")[0]
        return endpoints if isinstance(endpoints, list) else []

    def create_webhook_endpoint(
        self, *, url: str, events: list[str] | None = None, description: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"url": url}
        if events is not None:
            body["events"] = events
        if description is not None:
            body["description"] = description
        return self._post("/webhooks", body)

    def update_webhook_endpoint(self, endpoint_id: str, **fields: Any) -> dict[str, Any]:
        """PATCH ``url``, ``events``, ``description`` or ``active``."""
        path = f"/webhooks/{quote(endpoint_id, safe='')}"
        return self.request("PATCH", path, json_body=fields)[0]

    def rotate_webhook_secret(self, endpoint_id: str, *, expires_in: int) -> dict[str, Any]:
        """A new signing secret; the previous one keeps signing for ``expires_in`` seconds."""
        path = f"/webhooks/{quote(endpoint_id, safe='')}/rotate-secret"
        return self._post(path, {"expiresIn": expires_in})

    def delete_webhook_endpoint(self, endpoint_id: str) -> None:
        self.request("DELETE", f"/webhooks/{quote(endpoint_id, safe='')}")


# ── the resource table ──────────────────────────────────────────────────────────

OPERATIONS = frozenset({"create", "get", "update", "list"})


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One Plugipay collection: its path, the calls it answers and its named actions."""

    resource: str  # "checkout_session"
    path: str  # "/checkout-sessions"
    operations: frozenset[str]
    #: ``POST /<collection>/{id}/<action>`` calls named ``<action>_<resource>``
    actions: tuple[str, ...] = ()
    #: the collection's name in ``list_<plural>``
    plural: str = ""

    def item(self, object_id: str) -> str:
        return f"{self.path}/{quote(object_id, safe='')}"


#: resource → its collection (each resource module declares its own with :func:`endpoint`)
ENDPOINTS: dict[str, Endpoint] = {}
#: method names the table set on :class:`PlugipayClient`
_TABLE_METHODS: set[str] = set()


def endpoint(
    resource: str,
    path: str,
    *operations: str,
    actions: tuple[str, ...] = (),
    plural: str | None = None,
) -> Endpoint:
    """Declare a collection of the API: ``create_<resource>(body, idempotency_key=…)``,
    ``get_<resource>(id)``, ``update_<resource>(id, body)``, ``list_<plural>(**filters)``,
    ``<action>_<resource>(id, …)`` for each of ``actions`` and ``<resource>_action(id,
    action, body)`` become calls of every client."""
    unknown = set(operations) - OPERATIONS
    if unknown:
        raise ValueError(f"unknown operations {sorted(unknown)} for {resource}")
    entry = Endpoint(
        resource, path, frozenset(operations), tuple(actions), plural or resource + "s"
    )
    calls: dict[str, tuple[Callable[..., Any], tuple[str, ...]]] = {}
    for operation, name, call in (
        ("create", f"create_{resource}", _create),
        ("get", f"get_{resource}", _retrieve),
        ("update", f"update_{resource}", _update),
        ("list", f"list_{entry.plural}", _list),
    ):
        if operation in operations:
            calls[name] = (call, ())
    calls |= {f"{action}_{resource}": (_act_named, (action,)) for action in actions}
    if actions:
        calls[f"{resource}_action"] = (_act, ())
    hidden = sorted(n for n in calls if n in vars(PlugipayClient) and n not in _TABLE_METHODS)
    if hidden:
        raise ValueError(f"PlugipayClient.{hidden[0]} is written by hand; the table would hide it")
    ENDPOINTS[resource] = entry
    for name, (call, bound) in calls.items():
        _set_method(name, call, resource, *bound)
    return entry


def _set_method(name: str, call: Callable[..., Any], resource: str, *bound: str) -> None:
    """Set ``PlugipayClient.<name>``: ``call`` with the resource (and action) filled in. A real
    method, so ``mock.patch.object(PlugipayClient, "get_customer")`` works as it always did."""

    def method(self: PlugipayClient, *args: Any, **kwargs: Any) -> Any:
        return call(self, resource, *bound, *args, **kwargs)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"{call.__doc__ or name} ({ENDPOINTS[resource].path})"
    setattr(PlugipayClient, name, method)
    _TABLE_METHODS.add(name)


def _create(
    client: PlugipayClient,
    resource: str,
    body: dict[str, Any],
    *,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """Create an object: ``POST`` to the collection."""
    return client._post(ENDPOINTS[resource].path, body, idempotency_key)


def _retrieve(client: PlugipayClient, resource: str, object_id: str) -> dict[str, Any]:
    """Read one object by id: ``GET``."""
    return client._get(ENDPOINTS[resource].item(object_id))


def _update(
    client: PlugipayClient,
    resource: str,
    object_id: str,
    body: dict[str, Any],
    *,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """Change an object: ``PATCH`` with ``body``."""
    path = ENDPOINTS[resource].item(object_id)
    return client.request("PATCH", path, json_body=body, idempotency_key=idempotency_key)[0]


def _list(client: PlugipayClient, resource: str, **filters: Any) -> Iterator[dict[str, Any]]:
    """Every object of the collection, page after page."""
    return client.paginate(ENDPOINTS[resource].path, filters)


def _act(
    client: PlugipayClient,
    resource: str,
    object_id: str,
    action: str,
    body: dict[str, Any] | None = None,
    *,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """``POST /<collection>/{id}/<action>``: any action of the collection."""
    path = f"{ENDPOINTS[resource].item(object_id)}/{quote(action, safe='')}"
    return client._post(path, body or {}, idempotency_key)


def _act_named(
    client: PlugipayClient,
    resource: str,
    action: str,
    object_id: str,
    body: dict[str, Any] | None = None,
    *,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """This action on the object: ``POST /<collection>/{id}/<action>``."""
    return _act(client, resource, object_id, action, body, idempotency_key=idempotency_key)


# The API's own collections that mirror no resource (the resources declare theirs).
endpoint("event", "/events", "get", "list")
endpoint("portal_session", "/portal-sessions", "create")


def _key_kind(key: str | None) -> str:
    if not key:
        return "not set"
    if "_live_" in key:
        return "a live key"
    return "a test key" if "_test_" in key else "neither a test nor a live key"


def _reason(exc: Exception) -> str:
    """The innermost reason of a connection error (e.g. "Connection refused")."""
    reason: BaseException = exc
    while reason.__context__ is not None or getattr(reason, "reason", None) is not None:
        inner = getattr(reason, "reason", None) or reason.__context__
        if not isinstance(inner, BaseException) or inner is reason:
            break
        reason = inner
    text = str(reason)
    return text.split("] ", 1)[-1] if "] " in text else text


def _options_from_settings(alias: str | None = None) -> dict[str, Any]:
    entry = app_settings.ACCOUNTS.get(alias or "") if alias else None
    if entry is None:  # the default account, or one provisioned here (the platform key's)
        entry = {
            "KEY_ID": app_settings.KEY_ID,
            "SECRET": app_settings.SECRET,
            "API_KEY": app_settings.API_KEY,
        }
    return {
        "key_id": entry["KEY_ID"],
        "secret": entry["SECRET"],
        "api_key": entry["API_KEY"],
        "base_url": app_settings.BASE_URL,
        "api_prefix": app_settings.API_PREFIX,
        "timeout": app_settings.TIMEOUT,
        "max_retries": app_settings.MAX_RETRIES,
        "backoff": app_settings.RETRY_BACKOFF,
    }


def _refuse_unsendable(alias: str | None, options: dict[str, Any]) -> None:
    """Raise ``ConfigurationError`` naming the setting of a key or secret that cannot be sent
    (``manage.py check`` reports it too: ``E012``, ``E077``)."""
    configured = app_settings.raw("ACCOUNTS")
    entry = configured.get(alias) if alias and isinstance(configured, dict) else None
    for key in ("KEY_ID", "SECRET", "API_KEY"):
        value = options.get(key.lower())
        problem = credential_problem(value)
        if problem is not None:
            own = isinstance(entry, dict) and entry.get(key) == value
            where = f"PLUGIPAY['ACCOUNTS'][{alias!r}][{key!r}]" if own else f"PLUGIPAY[{key!r}]"
            raise ConfigurationError(f"{where} {problem}. {CREDENTIAL_FIX}")


def get_client() -> PlugipayClient:
    """The client for the current settings and the account acting now (its own credentials,
    or the platform key on behalf of it), cached while the settings stay the same."""
    now = acting.get()
    options = _options_from_settings(now.alias if now is not None else None)
    options["on_behalf_of"] = now.on_behalf_of if now is not None else None
    key = tuple(options.values())
    cached = _clients.get(key)
    if cached is None:
        _refuse_unsendable(now.alias if now is not None else None, options)
        cached = _clients[key] = PlugipayClient(**options)
    return cached


_clients: dict[tuple, PlugipayClient] = {}
