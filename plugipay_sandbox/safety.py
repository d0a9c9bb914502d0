"""What keeps other web pages from driving the sandbox: allowed ``Host`` values (DNS rebinding)
and same-origin rules for the ``/_sandbox/`` control routes and the dashboard's forms.

The sandbox has no auth; anything a browser can be made to send to it from another site (a
``no-cors`` POST, a form, a rebound host name) would move its clock, pay sessions (which then
sends validly signed webhooks into the developer's project) or add webhook endpoints. Tools that
are not browsers (the pytest plugin, the SDK, curl) send no ``Origin`` and no ``Sec-Fetch-Site``,
and a JSON body says so with its content type, so they pass unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from plugipay_sandbox.state import ApiError, SandboxConfig

#: a whole number in ASCII digits (a port, a timestamp, a Content-Length): ``isdigit()`` also
#: takes "²", which ``int()`` refuses
WHOLE_NUMBER = re.compile(r"[0-9]{1,18}")

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
#: Bind addresses that are not names a client uses.
WILDCARD_BINDS = ("", "0.0.0.0", "::", "[::]")
#: ``Sec-Fetch-Site`` values a browser sends for a request a page of the sandbox itself made,
#: or one the user typed or bookmarked.
OWN_FETCH_SITES = ("same-origin", "none")
JSON_TYPES = ("application/json",)


def split_host(value: str) -> tuple[str, int | None]:
    """``"localhost:8787"`` → ``("localhost", 8787)``; ``"[::1]"`` → ``("[::1]", None)``.

    A port that is not a number answers ``(value, -1)``, which matches nothing.
    """
    value = value.strip().lower()
    name, sep, port = value.rpartition(":")
    if not sep or value.endswith("]") or (":" in name and not name.endswith("]")):
        return value, None
    if not WHOLE_NUMBER.fullmatch(port):
        return value, -1
    return name, int(port)


def _bracketed(name: str) -> str:
    """An IPv6 literal as a Host header writes it."""
    return f"[{name}]" if ":" in name and not name.startswith("[") else name


def allowed_hosts(config: SandboxConfig) -> list[tuple[str, int | None]]:
    """The ``(name, port)`` pairs the sandbox answers; ``port`` None: any port of that name.

    Loopback names with the sandbox's port, the address it was bound to, the host of
    ``--public-url`` and every ``--allowed-host`` (``*`` answers every host).
    """
    allowed: list[tuple[str, int | None]] = [(name, config.port) for name in LOOPBACK_NAMES]
    if config.host.lower() not in WILDCARD_BINDS:
        allowed.append((_bracketed(config.host.lower()), config.port))
    if config.public_url:
        parts = urlsplit(config.public_url)
        if parts.hostname:
            default = 443 if parts.scheme == "https" else 80
            allowed.append((_bracketed(parts.hostname), parts.port or default))
    for entry in config.allowed_hosts:
        allowed.append(split_host(entry))
    return allowed


def host_allowed(config: SandboxConfig, host_header: str | None) -> bool:
    """Whether a request's ``Host`` names this sandbox (a request without one is allowed)."""
    if not host_header:
        return True
    if "*" in config.allowed_hosts:
        return True
    name, port = split_host(host_header)
    if port is None:
        port = 80
    return any(name == n and (p is None or p == port) for n, p in allowed_hosts(config))


def check_host(config: SandboxConfig, headers: Mapping[str, str]) -> None:
    """Refuse (400) a ``Host`` the sandbox was not started for: a DNS-rebinding page."""
    host = headers.get("host")
    if not host_allowed(config, host):
        raise ApiError(
            400,
            "disallowed_host",
            f"The sandbox does not answer for host {host!r}. Reach it at "
            f"http://127.0.0.1:{config.port}, or start it with --allowed-host NAME "
            "to answer another name.",
        )


def cross_site_reason(config: SandboxConfig, headers: Mapping[str, str]) -> str | None:
    """Why a request came from another site (a foreign ``Origin`` or ``Sec-Fetch-Site``), or None.

    ``Origin`` must name this sandbox (one of its allowed hosts); ``Sec-Fetch-Site`` must be
    ``same-origin`` or ``none`` when a browser sends it.
    """
    origin = headers.get("origin")
    if origin is not None:
        try:
            parts = urlsplit(origin)
        except ValueError:  # "http://[": no URL at all
            return f"its Origin {origin!r} is not this sandbox"
        known = parts.scheme in ("http", "https") and parts.netloc
        if not known or not host_allowed(config, parts.netloc):
            return f"its Origin {origin!r} is not this sandbox"
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site.lower() not in OWN_FETCH_SITES:
        return f"Sec-Fetch-Site is {fetch_site!r}"
    return None


SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def check_form(config: SandboxConfig, method: str, headers: Mapping[str, str]) -> None:
    """Refuse (403) a hosted page's form posted from another site (a link still opens a page)."""
    if method in SAFE_METHODS:
        return
    reason = cross_site_reason(config, headers)
    if reason is not None:
        raise ApiError(
            403,
            "cross_site_refused",
            f"Refused: {reason}. The sandbox's pages take forms only from themselves.",
        )


def check_control(config: SandboxConfig, method: str, headers: Mapping[str, str], body: bytes):
    """Refuse (403) a control-route request from another site, and (415) a body that is not JSON.

    A bodiless POST with no content type passes (``requests.post(url)``); every body a browser
    can send across sites without a preflight (a form, ``text/plain``) has another type.
    """
    reason = cross_site_reason(config, headers)
    if reason is not None:
        raise ApiError(
            403,
            "cross_site_refused",
            f"Refused: {reason}. The /_sandbox/ control routes answer only tools on this "
            "machine and the sandbox's own pages, never another web page.",
        )
    if method in SAFE_METHODS:
        return
    content_type = headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if (body.strip() or content_type) and not (
        media_type in JSON_TYPES or media_type.endswith("+json")
    ):
        raise ApiError(
            415,
            "unsupported_media_type",
            "Control routes take JSON: send Content-Type: application/json "
            f"(got {content_type or 'no content type'!s}).",
        )
