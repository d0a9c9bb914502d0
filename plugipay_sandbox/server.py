"""A threaded WSGI server for the sandbox that can drop a connection on purpose."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from socketserver import ThreadingMixIn
from typing import IO, cast
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer

from plugipay_sandbox import persistence
from plugipay_sandbox.app import DropConnection, SandboxApp
from plugipay_sandbox.state import SandboxConfig, Store
from plugipay_sandbox.webhooks import Deliverer


class _ServerHandler(ServerHandler):
    dropped = False
    request_handler: WSGIRequestHandler  # set as wsgiref's own handle() does

    def handle_error(self) -> None:
        if isinstance(sys.exc_info()[1], DropConnection):
            self.dropped = True
            return
        super().handle_error()

    def log_exception(self, exc_info) -> None:  # one line, not a traceback per broken pipe
        sys.stderr.write(f"plugipay_sandbox: {exc_info[0].__name__}: {exc_info[1]}\n")


class _RequestHandler(WSGIRequestHandler):
    server: _ThreadingServer

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
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
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
        app = self.server.get_app()
        if app is None:
            raise RuntimeError("the sandbox server was started without its WSGI app")
        handler.run(app)
        if handler.dropped:
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    quiet = True
    in_flight = 0
    _in_flight_lock = threading.Lock()

    def _count(self, step: int) -> None:
        with self._in_flight_lock:
            self.in_flight += step

    def process_request(self, request, client_address) -> None:
        self._count(1)  # counted from accept, before its thread exists
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._count(-1)
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._count(-1)


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
        if self._saver is not None:
            self._saver.stop()  # the final write

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
