"""The sandbox's WSGI application: routing, the envelope, request auth, idempotency and faults."""

from __future__ import annotations

import base64
import contextvars
import email.policy
import importlib
import json
import pkgutil
import re
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from email.parser import BytesParser
from typing import Any
from urllib.parse import parse_qs, quote

from plugipay_sandbox import safety, signing
from plugipay_sandbox.hosted import i18n
from plugipay_sandbox.state import ApiError, Store, iso, new_id
from plugipay_sandbox.state.core import parse_json

MAX_BODY = 1024 * 1024
#: A transfer proof is up to 4 MB (plugipay-api.md §10.2) plus the multipart framing.
MAX_UPLOAD_BODY = 4 * 1000 * 1000 + 64 * 1024
UPLOAD_PATHS = ("/proof-image", "/claim")
TIMESTAMP_WINDOW = 300
API_PREFIXES = ("/api/v1", "/v1")
CONTROL_PREFIX = "/_sandbox/"
DASHBOARD_PREFIX = "/dashboard"
STATUS_TEXT = {
    200: "OK",
    201: "Created",
    204: "No Content",
    303: "See Other",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    410: "Gone",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


#: The store of the sandbox serving the current page (what every page's frame shows, the clock).
SERVING: contextvars.ContextVar[Store | None] = contextvars.ContextVar(
    "sandbox_serving", default=None
)
#: The account the dashboard's switcher chose (``?account=``; ``None``: all accounts): its
#: links and forms carry it on.
CHOSEN_ACCOUNT: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "sandbox_chosen_account", default=None
)


class DropConnection(Exception):
    """Raised after a change is committed to close the socket without answering."""


class Request:
    def __init__(self, environ: dict[str, Any]) -> None:
        self.environ = environ
        self.method = environ["REQUEST_METHOD"].upper()
        self.path = environ.get("PATH_INFO", "") or "/"
        self.query_string = environ.get("QUERY_STRING", "")
        self.query = {k: v[0] for k, v in parse_qs(self.query_string).items()}
        self.headers = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            self.headers["content-type"] = environ["CONTENT_TYPE"]
        self.body = b""
        self.params: dict[str, str] = {}
        self.mode = "test"
        #: Signed with a platform-admin key (``--platform-key``).
        self.platform = False
        self._json: Any = None

    @property
    def signed_paths(self) -> list[str]:
        """The path with query as the client sent it (and a re-encoded fallback)."""
        raw = self.environ.get("sandbox.raw_path")
        rebuilt = quote(self.environ.get("SCRIPT_NAME", "") + self.path, safe="/:@!$&'()*+,;=-._~")
        if self.query_string:
            rebuilt += "?" + self.query_string
        return [p for p in (raw, rebuilt) if p]

    def json(self) -> dict[str, Any]:
        if self._json is None:
            if not self.body.strip():
                self._json = {}
            else:
                try:
                    self._json = parse_json(self.body)
                except (ValueError, UnicodeDecodeError) as exc:
                    raise ApiError(
                        400, "invalid_request", f"The request body is not valid JSON: {exc}."
                    ) from exc
            if not isinstance(self._json, dict):
                raise ApiError(400, "invalid_request", "The request body must be a JSON object.")
        return self._json

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode("utf-8", "replace")).items()}

    def file(self, name: str) -> bytes:
        """The bytes of the file field ``name`` of a multipart/form-data body (b"" if none)."""
        content_type = self.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            return b""
        message = BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + self.body
        )
        for part in message.iter_parts():
            if part.get_param("name", header="content-disposition") == name:
                payload = part.get_payload(decode=True)
                return payload if isinstance(payload, bytes) else b""
        return b""


class Response:
    def __init__(
        self,
        body: bytes | str = b"",
        status: int = 200,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.body = body.encode("utf-8") if isinstance(body, str) else body
        self.status = status
        self.headers = {"Content-Type": content_type, **(headers or {})}


def envelope(
    data: Any,
    *,
    status: int = 200,
    meta: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    store: Store | None = None,
) -> Response:
    now = store.now() if store else time.time()
    body = {
        "data": data,
        "error": error,
        "meta": {"requestId": new_id("req_"), "timestamp": iso(now), **(meta or {})},
    }
    return Response(json.dumps(body, separators=(",", ":")), status, headers=headers)


def redirect(location: str) -> Response:
    return Response(b"", 303, "text/plain", {"Location": location})


def html(page: str, status: int = 200) -> Response:
    return Response(page, status, "text/html; charset=utf-8")


Handler = Callable[[Store, Request], Response]


class Router:
    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], Handler, dict[str, Any]]] = []

    def add(self, method: str, pattern: str, **flags: Any) -> Callable[[Handler], Handler]:
        regex = re.compile("^" + re.sub(r"<(\w+)>", r"(?P<\1>[^/]+)", pattern) + "$")

        def register(handler: Handler) -> Handler:
            self.routes.append((method, regex, handler, flags))
            return handler

        return register

    def match(self, method: str, path: str):
        allowed = False
        for route_method, regex, handler, flags in self.routes:
            found = regex.match(path)
            if found:
                if route_method == method:
                    return handler, found.groupdict(), flags
                allowed = True
        if allowed:
            raise ApiError(405, "method_not_allowed", f"{method} is not allowed on {path}.")
        raise ApiError(404, "not_found", f"No route for {method} {path}.")


api = Router()  # paths after /api/v1
pages = Router()  # hosted checkout and /_sandbox control routes


# ── list helpers shared by the resources ─────────────────────────────────────────


def paginate(
    store: Store,
    request: Request,
    items: Iterable[dict[str, Any]],
    render: Callable[[dict[str, Any]], Any] | None = None,
) -> Response:
    """Newest first (or ``order``/``direction=asc``), cursor pages, both pagination forms.

    Only the page is rendered (``render``, default: the object's public form).
    """
    try:
        limit = int(request.query.get("limit", 50))
    except ValueError as exc:
        raise ApiError(400, "VALIDATION_ERROR", "limit must be an integer.", field="limit") from exc
    if not 1 <= limit <= 100:
        raise ApiError(400, "VALIDATION_ERROR", "limit must be between 1 and 100.", field="limit")
    order = request.query.get("order") or request.query.get("direction") or "desc"
    if order not in ("asc", "desc"):
        raise ApiError(400, "VALIDATION_ERROR", "order must be asc or desc.", field="order")
    rows = sorted(items, key=lambda o: o["_seq"], reverse=order == "desc")
    cursor = request.query.get("cursor")
    if cursor:
        after = decode_cursor(cursor)
        rows = [o for o in rows if (o["_seq"] < after if order == "desc" else o["_seq"] > after)]
    page, more = rows[:limit], len(rows) > limit
    next_cursor = encode_cursor(page[-1]["_seq"]) if more and page else None
    meta = {
        "cursor": next_cursor,
        "hasMore": more,
        "page": {"limit": limit, "hasMore": more, "nextCursor": next_cursor},
    }
    return envelope([(render or store.public)(o) for o in page], meta=meta, store=store)


def encode_cursor(seq: int) -> str:
    return "cur_" + base64.urlsafe_b64encode(json.dumps({"after": seq}).encode()).decode()


def decode_cursor(cursor: str) -> int:
    try:
        return int(json.loads(base64.urlsafe_b64decode(cursor.removeprefix("cur_")))["after"])
    except (ValueError, KeyError, TypeError, OverflowError, RecursionError) as exc:
        raise ApiError(
            400, "VALIDATION_ERROR", "cursor is not one this API returned.", field="cursor"
        ) from exc


# ── authentication ────────────────────────────────────────────────────────────


def mode_of(key: str) -> str:
    return "live" if "_live_" in key else "test"


def authenticate(store: Store, request: Request) -> str:
    """Check scheme A (HMAC), B (Bearer) or C (CLI headers); return the key's mode."""
    config = store.config
    authorization = request.headers.get("authorization", "")
    if authorization.startswith("Bearer "):
        token = authorization[7:].strip()
        if token and token == config.api_key:
            return mode_of(token)
        raise ApiError(401, "INVALID_KEY", "Unknown or revoked API key.")
    params = signing.parse_authorization(authorization) if authorization else None
    if params is not None:
        key_id, signature = params.get("keyId", ""), params.get("signature", "")
    elif "x-plugipay-key-id" in request.headers:
        key_id = request.headers["x-plugipay-key-id"]
        signature = request.headers.get("x-plugipay-signature", "")
    else:
        raise ApiError(
            401,
            "INVALID_KEY",
            "No credentials: sign the request (Plugipay-HMAC-SHA256) or send a Bearer key.",
        )
    secret = config.credentials().get(key_id)
    if secret is None:
        raise ApiError(401, "INVALID_KEY", f"Unknown access key id {key_id!r}.")
    timestamp = request.headers.get("x-plugipay-timestamp", "")
    if not safety.WHOLE_NUMBER.fullmatch(timestamp):
        raise ApiError(401, "INVALID_TIMESTAMP", "X-Plugipay-Timestamp must be epoch seconds.")
    # Wall-clock time: advancing the sandbox clock must not break request signing.
    if abs(time.time() - int(timestamp)) > TIMESTAMP_WINDOW:
        raise ApiError(
            401,
            "INVALID_TIMESTAMP",
            f"X-Plugipay-Timestamp is more than {TIMESTAMP_WINDOW}s from server time.",
        )
    idempotency_key = request.headers.get("idempotency-key")
    candidates = []
    for path in request.signed_paths:
        candidates.append(
            signing.request_string_to_sign(
                request.method, path, timestamp, request.body, idempotency_key
            )
        )
        if params is None:
            candidates.append(
                signing.cli_string_to_sign(request.method, path, timestamp, request.body)
            )
    for message in candidates:
        if signing.constant_time_equal(signing.hmac_hex(secret, message), signature):
            request.platform = key_id in config.platform_keys
            return mode_of(key_id)
    raise ApiError(
        401,
        "INVALID_SIGNATURE",
        "The request signature does not match. Sign the "
        "exact body bytes and the path with its query.",
    )


ON_BEHALF_OF = "x-plugipay-on-behalf-of"
ADMIN_PREFIX = "/admin/"


def acting_account(store: Store, request: Request, path: str) -> str | None:
    """The account an authenticated API request acts for (``None``: the admin routes, all).

    ``X-Plugipay-On-Behalf-Of`` (an ``acc_…`` or ``ws_…`` id) names it; without the header, the
    merchant key's own account. Only a platform key may send the header or call ``/admin/*``.
    """
    named = request.headers.get(ON_BEHALF_OF, "").strip()
    admin = path.startswith(ADMIN_PREFIX)
    if (named or admin) and not request.platform:
        what = "call the admin routes" if admin else "send X-Plugipay-On-Behalf-Of"
        raise ApiError(403, "forbidden", f"Only a platform-admin key may {what}.")
    if admin:
        return None
    if not named:
        return store.config.account_id
    account = store.find_account(named)
    if account is None:
        raise ApiError(404, "account_not_found", f"No account {named!r} (X-Plugipay-On-Behalf-Of).")
    return account["id"]


def owning_account(store: Store, request: Request) -> str | None:
    """The account a page or public route acts for: that of the object its path names, else
    the dashboard's chosen account (``?account=``), else every account."""
    for value in request.params.values():
        account = store.account_of(value)
        if account is not None:
            return account
    return chosen_account(store, request)


def chosen_account(store: Store, request: Request) -> str | None:
    """The account the dashboard's switcher chose (``?account=``), if it names one."""
    if not request.path.startswith(DASHBOARD_PREFIX):
        return None
    chosen = store.find_account(request.query.get("account", ""))
    return chosen["id"] if chosen is not None else None


# ── the application ───────────────────────────────────────────────────────────


def import_all(*names: str) -> None:
    """Import modules, and every submodule of those that are packages."""
    for name in names:
        module = importlib.import_module(name)
        for found in pkgutil.iter_modules(getattr(module, "__path__", [])):
            importlib.import_module(f"{name}.{found.name}")


class SandboxApp:
    def __init__(self, store: Store) -> None:
        self.store = store
        # Every route module registers its own routes when imported: the control routes,
        # then each module of the resources and hosted packages (a new one needs no edit here).
        import_all(
            "plugipay_sandbox.control", "plugipay_sandbox.resources", "plugipay_sandbox.hosted"
        )

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> list[bytes]:
        request = Request(environ)
        try:
            response = self.handle(request)
        except DropConnection:
            raise
        except ApiError as exc:
            response = envelope(
                None, status=exc.status, error=exc.as_error(), headers=exc.headers, store=self.store
            )
        except Exception:  # a sandbox bug must answer, never kill the server thread
            traceback.print_exc(file=sys.stderr)
            response = envelope(
                None,
                status=500,
                store=self.store,
                error={"code": "internal_error", "message": "The sandbox hit an internal error."},
            )
        headers = list(response.headers.items())
        headers.append(("Content-Length", str(len(response.body))))
        if request.path.startswith(DASHBOARD_PREFIX):
            # No other site may frame the dashboard and trick a click on its buttons.
            headers += [
                ("X-Frame-Options", "DENY"),
                ("Content-Security-Policy", "frame-ancestors 'none'"),
            ]
        if request.path.startswith(API_PREFIXES):
            reset = str(int(self.store.now()) + 1)
            headers += [
                ("X-RateLimit-Limit", "100"),
                ("X-RateLimit-Remaining", "99"),
                ("X-RateLimit-Reset", reset),
            ]
        reason = STATUS_TEXT.get(response.status, "Unknown")
        start_response(f"{response.status} {reason}", headers)
        return [response.body] if request.method != "HEAD" else []

    def handle(self, request: Request) -> Response:
        declared = request.environ.get("CONTENT_LENGTH") or "0"
        if not safety.WHOLE_NUMBER.fullmatch(declared):
            raise ApiError(400, "VALIDATION_ERROR", "Content-Length must be a number of bytes.")
        length = int(declared)
        limit = MAX_UPLOAD_BODY if request.path.endswith(UPLOAD_PATHS) else MAX_BODY
        if length > limit:
            size = "1 MiB" if limit == MAX_BODY else "4 MB plus the form framing"
            raise ApiError(413, "payload_too_large", f"Request bodies are limited to {size}.")
        request.body = request.environ["wsgi.input"].read(length) if length else b""
        safety.check_host(self.store.config, request.headers)
        if request.path.startswith(CONTROL_PREFIX):
            safety.check_control(self.store.config, request.method, request.headers, request.body)
        elif not request.path.startswith((*API_PREFIXES, DASHBOARD_PREFIX)):
            # Hosted pages' forms (pay, 3-D Secure, simulate, portal actions) are posted only
            # from the sandbox's own pages; the dashboard answers its own refusal page.
            safety.check_form(self.store.config, request.method, request.headers)
        self.store.tick()
        for prefix in API_PREFIXES:
            if request.path == prefix or request.path.startswith(prefix + "/"):
                return self.handle_api(request, request.path[len(prefix) :] or "/")
        handler, params, _flags = pages.match(request.method, request.path)
        request.params = params
        token = i18n.activate(
            i18n.language_of(request.query.get("lang"), request.headers.get("accept-language"))
        )
        serving = SERVING.set(self.store)
        chosen = CHOSEN_ACCOUNT.set(chosen_account(self.store, request))
        try:
            with self.store.scope(owning_account(self.store, request)):
                return handler(self.store, request)
        finally:
            CHOSEN_ACCOUNT.reset(chosen)
            SERVING.reset(serving)
            i18n.reset(token)

    def handle_api(self, request: Request, path: str) -> Response:
        handler, params, flags = api.match(request.method, path)
        request.params = params
        if flags.get("public"):
            account = owning_account(self.store, request)
        else:
            request.mode = authenticate(self.store, request)
            account = acting_account(self.store, request, path)
        with self.store.scope(account):
            return self.call_api(request, path, handler)

    def call_api(self, request: Request, path: str, handler: Handler) -> Response:
        full_path = "/api/v1" + path
        fault = self.store.take_fault(
            full_path, ("http_500", "http_429", "delay", "drop_after_commit")
        )
        if fault and fault.kind == "http_500":
            raise ApiError(500, "internal_error", "Injected fault: HTTP 500.")
        if fault and fault.kind == "http_429":
            raise ApiError(
                429,
                "rate_limited",
                "Injected fault: too many requests.",
                headers={"Retry-After": str(fault.retry_after)},
            )
        if fault and fault.kind == "delay":
            time.sleep(fault.delay)
        key = request.headers.get("idempotency-key")
        if request.method == "GET" or not key:
            response = handler(self.store, request)
        else:
            response = self.idempotent(request, key, handler)
        if fault and fault.kind == "drop_after_commit":
            raise DropConnection()
        return response

    def idempotent(self, request: Request, key: str, handler: Handler) -> Response:
        try:
            body: Any = parse_json(request.body) if request.body.strip() else {}
        except ValueError:
            body = request.body.decode("utf-8", "replace")
        fingerprint = {"method": request.method, "path": request.path, "body": body}
        with self.store.lock:
            record = self.store.idempotent_lookup(request.mode, key, fingerprint)
            if record is not None:
                return Response(
                    record["body"], record["status"], headers={"Idempotent-Replayed": "true"}
                )
            try:
                response = handler(self.store, request)
            except ApiError as exc:
                if exc.status >= 500:
                    raise
                response = envelope(
                    None,
                    status=exc.status,
                    error=exc.as_error(),
                    headers=exc.headers,
                    store=self.store,
                )
            self.store.idempotent_store(
                request.mode, key, fingerprint, response.status, response.body
            )
            return response
