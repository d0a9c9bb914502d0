"""A threaded WSGI server for the sandbox that can drop a connection on purpose."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from socketserver import ThreadingMixIn
from typing import IO, cast
from wsgiref.headers import Headers
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer

from plugipay_sandbox import persistence
from plugipay_sandbox.app import DropConnection, SandboxApp
from plugipay_sandbox.state import SandboxConfig, Store
from plugipay_sandbox.webhooks import Deliverer


class _ServerHandler(ServerHandler):
    http_version = "1.1"
    dropped = False
    #: may the connection take another request after this one (set before the app runs)
    keep_alive = False
    request_handler: WSGIRequestHandler  # set as wsgiref's own handle() does
    headers: Headers  # set by start_response

    def cleanup_headers(self) -> None:
        super().cleanup_headers()
        headers = self.headers
        # Another request on this connection only after an answer whose end the client can
        # tell (its Content-Length); otherwise say so and close, as HTTP/1.0 did.
        if not (self.keep_alive and "Content-Length" in headers):
            self.keep_alive = False
            headers["Connection"] = "close"

    def handle_error(self) -> None:
        self.keep_alive = False  # the answer may be cut short: its end is unknown
        if isinstance(sys.exc_info()[1], DropConnection):
            self.dropped = True
            return
        super().handle_error()

    def log_exception(self, exc_info) -> None:  # one line, not a traceback per broken pipe
        sys.stderr.write(f"plugipay_sandbox: {exc_info[0].__name__}: {exc_info[1]}\n")


class _RequestHandler(WSGIRequestHandler):
    """One connection: requests without a body (GET, HEAD) keep it open for the next one, as
    Plugipay's API does for the client's pooled session; a request with a body, a dropped
    connection or an answer of unknown length closes it."""

    server: _ThreadingServer
    protocol_version = "HTTP/1.1"
    #: seconds an idle kept-alive connection waits for its next request
    timeout = 60
    # the headers and the body are written apart: sent at once, not after a delayed ACK
    disable_nagle_algorithm = True

    def get_environ(self):
        environ = super().get_environ()
        environ["sandbox.raw_path"] = self.path
        if self.headers.get("content-type") is None:
            # wsgiref fills in text/plain; the control routes must see that none was sent.
            environ.pop("CONTENT_TYPE", None)
        return environ

    def log_message(self, format: str, *args) -> None:
        if not self.server.quiet:
            super().log_message(format, *args)

    def handle(self) -> None:
        """Answer requests until the connection closes; the first was counted in flight when
        it was accepted, each later one once its request line arrives."""
        first = True
        while True:
            try:
                self.raw_requestline = self.rfile.readline(65537)
            except OSError:  # the idle timeout, or the server closing it
                break
            if not first:
                if not self.raw_requestline:
                    break
                self.server.receiving(self.connection)
            try:
                self.close_connection = True
                self._handle_one()
            finally:
                self.server.answered(self.connection)
            first = False
            if self.close_connection:
                break

    def _handle_one(self) -> None:
        if len(self.raw_requestline) > 65536:
            # what parse_request() would have set: send_error() logs and answers with them
            self.requestline, self.request_version, self.command = "", "", ""
            self.send_error(414)
            return
        if not self.parse_request():
            return
        # typeshed types rfile/wfile as BufferedIOBase, ServerHandler wants IO[bytes]; wsgiref's
        # own WSGIRequestHandler.handle() passes them the same way.
        handler = _ServerHandler(
            cast(IO[bytes], self.rfile),
            cast(IO[bytes], self.wfile),
            self.get_stderr(),
            self.get_environ(),
            multithread=True,
        )
        handler.request_handler = self
        handler.keep_alive = not self.close_connection and self._bodiless()
        app = self.server.get_app()
        if app is None:
            raise RuntimeError("the sandbox server was started without its WSGI app")
        handler.run(app)
        self.close_connection = not handler.keep_alive or handler.dropped
        if handler.dropped:
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    def _bodiless(self) -> bool:
        return (
            self.command in ("GET", "HEAD")
            and self.headers.get("Content-Length", "0") == "0"
            and "Transfer-Encoding" not in self.headers
        )


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    quiet = True
    in_flight = 0
    _in_flight_lock = threading.Lock()

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        #: open connections → whether one of their requests is counted in flight
        self.connections: dict[socket.socket, bool] = {}

    def process_request(self, request, client_address) -> None:
        with self._in_flight_lock:  # its first request, counted from accept
            self.connections[request] = True
            self.in_flight += 1
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._close(request)
            raise

    def receiving(self, request: socket.socket) -> None:
        """A later request arrived on a kept-alive connection."""
        with self._in_flight_lock:
            if not self.connections.get(request):
                self.connections[request] = True
                self.in_flight += 1

    def answered(self, request: socket.socket) -> None:
        """A request on ``request`` was answered (or given up on)."""
        with self._in_flight_lock:
            if self.connections.get(request):
                self.connections[request] = False
                self.in_flight -= 1

    def _close(self, request: socket.socket) -> None:
        self.answered(request)
        with self._in_flight_lock:
            self.connections.pop(request, None)

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._close(request)

    def close_connections(self) -> None:
        """Close every open connection (the server stops: kept-alive ones must not linger)."""
        with self._in_flight_lock:
            open_now = list(self.connections)
        for request in open_now:
            with contextlib.suppress(OSError):
                request.shutdown(socket.SHUT_RDWR)


class SandboxServer:
    """Runs the sandbox in background threads: ``start()``, ``base_url``, ``stop()``.

    Port 0 picks a free loopback port.
    """

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self._httpd = _ThreadingServer((self.config.host, self.config.port), _RequestHandler)
        self.config.port = self._httpd.server_address[1]
        self._httpd.quiet = self.config.quiet
        self.store = Store(self.config)
        self.deliverer = Deliverer(self.store)
        self.store.deliverer = self.deliverer  # type: ignore[attr-defined]
        self._httpd.set_app(SandboxApp(self.store))
        self._saver: persistence.Saver | None = None
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="plugipay-sandbox",
            daemon=True,
        )

    @property
    def base_url(self) -> str:
        return self.store.base_url()

    @property
    def requests_in_flight(self) -> int:
        """Requests accepted and not yet answered (tests wait for 0 instead of sleeping)."""
        return self._httpd.in_flight

    def start(self) -> SandboxServer:
        self._thread.start()
        self.deliverer.start()
        if self.config.state_file:
            self._saver = persistence.Saver(self.store, self.config.state_file).start()
        return self

    def stop(self) -> None:
        self.deliverer.stop()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._httpd.close_connections()
        if self._saver is not None:
            self._saver.stop()  # the final write

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
