"""Command line: ``python -m plugipay_sandbox --port 8787 --forward-to URL --webhook-secret S``."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading

from plugipay_sandbox import cards, persistence
from plugipay_sandbox.server import SandboxServer
from plugipay_sandbox.state import SandboxConfig
from plugipay_sandbox.state.core import DEFAULT_MERCHANT_NAME


def _schedule(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError("use comma-separated seconds, e.g. 1,2,5,10") from None
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError("retry delays cannot be negative")
    return values


def _platform_key(text: str) -> tuple[str, str]:
    key_id, _, secret = text.partition(":")
    if not key_id.strip() or not secret.strip():
        raise argparse.ArgumentTypeError("use KEY_ID:SECRET, e.g. pk_test_pf:sk_test_pf")
    return key_id.strip(), secret.strip()


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError("a port is between 0 and 65535")
    return port


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m plugipay_sandbox",
        description="An offline, stateful stand-in for the Plugipay API (not Plugipay).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=_port, default=8787, help="0 picks a free port")
    parser.add_argument(
        "--forward-to", metavar="URL", help="register a webhook endpoint that receives every event"
    )
    parser.add_argument(
        "--webhook-secret",
        metavar="S",
        help="signing secret for --forward-to (default: a random whsec_…)",
    )
    parser.add_argument("--key-id", default="pk_test_sandbox")
    parser.add_argument("--secret", default="sk_test_sandbox")
    parser.add_argument(
        "--api-key", default="pk_test_sandbox_bearer", help="Bearer key accepted by scheme B"
    )
    parser.add_argument(
        "--platform-key",
        type=_platform_key,
        action="append",
        default=[],
        metavar="KEY_ID:SECRET",
        help="a platform-admin key (repeatable; test or live by its prefix): the only keys that "
        "may send X-Plugipay-On-Behalf-Of or call /api/v1/admin/*",
    )
    parser.add_argument("--event-style", choices=("sdk", "docs"), default="sdk")
    parser.add_argument(
        "--retry-schedule",
        type=_schedule,
        default=(1, 2, 5, 10, 30, 60),
        metavar="S,S,…",
        help="seconds between delivery attempts",
    )
    parser.add_argument(
        "--refund-delay",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="pending refunds succeed after this long; 0 at once, -1 never",
    )
    parser.add_argument(
        "--state-file", metavar="F", help="keep the state in this JSON file (default: in memory)"
    )
    parser.add_argument(
        "--fresh", action="store_true", help="start empty, ignoring what --state-file holds"
    )
    parser.add_argument(
        "--public-url", metavar="URL", help="base URL used in hostedUrl (default http://HOST:PORT)"
    )
    parser.add_argument(
        "--merchant-name",
        metavar="NAME",
        default=DEFAULT_MERCHANT_NAME,
        help=f"the shop's name on hosted pages (default {DEFAULT_MERCHANT_NAME!r})",
    )
    parser.add_argument(
        "--allowed-host",
        metavar="NAME",
        action="append",
        default=[],
        help="also answer requests for this Host (NAME or NAME:PORT; repeatable; * for any); "
        "loopback names with the sandbox's port are always answered",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request")
    return parser


#: Seconds a stopping sandbox process may take before it is ended anyway (see ``main``).
STOP_DEADLINE = 20.0


def main(argv: list[str] | None = None, *, exit_deadline: bool = False) -> int:
    args = build_parser().parse_args(argv)
    if args.webhook_secret and not args.forward_to:
        build_parser().error("--webhook-secret needs --forward-to")
    _log_to_console()
    if args.fresh and args.state_file and os.path.exists(args.state_file):
        os.unlink(args.state_file)
    config = SandboxConfig(
        host=args.host,
        port=args.port,
        key_id=args.key_id,
        secret=args.secret,
        api_key=args.api_key,
        forward_to=args.forward_to,
        webhook_secret=args.webhook_secret,
        event_style=args.event_style,
        retry_schedule=args.retry_schedule,
        refund_delay=args.refund_delay,
        state_file=args.state_file,
        public_url=args.public_url,
        merchant_name=args.merchant_name,
        allowed_hosts=tuple(args.allowed_host),
        platform_keys=dict(args.platform_key),
        quiet=not args.verbose,
    )
    try:
        server = SandboxServer(config)
    except persistence.StateFileError as exc:
        print(f"plugipay_sandbox: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(
            f"plugipay_sandbox: cannot listen on {args.host}:{args.port}: {exc.strerror}",
            file=sys.stderr,
        )
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # before the banner tells anyone
    server.start()
    endpoint = next(iter(server.store.endpoints.values()), None)
    lines = [
        "plugipay_sandbox — an offline stand-in for Plugipay (not Plugipay)",
        f"  base URL        {server.base_url}",
        f"  dashboard       {server.base_url}/dashboard/",
        f"  key id / secret {config.key_id} / {config.secret}",
        f"  bearer key      {config.api_key}",
    ]
    if endpoint is not None:
        lines += [
            f"  forwarding to   {endpoint['url']}",
            f"  webhook secret  {endpoint['_secret']}",
        ]
    lines.append(f"  account         {config.account_id}")
    lines += [f"  platform key    {key_id} / {secret}" for key_id, secret in args.platform_key]
    if config.state_file:
        lines.append(
            f"  state file      {os.path.abspath(config.state_file)} (--fresh: start empty)"
        )
    else:
        lines.append("  state           in memory only (--state-file F keeps it)")
    lines.append(
        "  test cards      "
        + ", ".join(f"{c.display} ({c.description.lower()})" for c in cards.TEST_CARDS[:2])
        + ", …"
    )
    lines.append("Press Ctrl-C to stop.")
    print("\n".join(lines), flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    if exit_deadline:
        # The command-line process always ends: a delivery stuck on an unanswering receiver
        # must not keep Ctrl-C or a terminate waiting (state is saved as it changes).
        watchdog = threading.Timer(STOP_DEADLINE, _exit_now)
        watchdog.daemon = True
        watchdog.start()
    server.stop()
    print("plugipay_sandbox stopped.", flush=True)
    return 0


def _exit_now() -> None:
    print(
        f"plugipay_sandbox: stopping took over {STOP_DEADLINE:.0f}s; ended anyway.",
        file=sys.stderr,
        flush=True,
    )
    os._exit(0)


def _log_to_console() -> None:
    """Failed deliveries and other warnings go to stderr, one line each."""
    log = logging.getLogger("plugipay_sandbox")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("plugipay_sandbox: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


if __name__ == "__main__":
    sys.exit(main(exit_deadline=True))
