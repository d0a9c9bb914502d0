"""The sandbox server's connections: kept alive between bodiless requests, as Plugipay's API
keeps the client's pooled connection; closed after a request with a body, and when it stops."""

import socket

import pytest
import requests

from django_plugipay.testing import wait_for
from plugipay_sandbox import SandboxConfig, SandboxServer


@pytest.fixture
def server():
    running = SandboxServer(SandboxConfig(port=0)).start()
    yield running
    running.stop()


def port_of(response: requests.Response) -> int:
    """The client port of a response's connection (read with ``stream=True``), then read it
    to the end so the connection goes back to the pool."""
    port = response.raw._connection.sock.getsockname()[1]
    response.content  # noqa: B018
    return port


def local_ports(session: requests.Session, url: str, count: int) -> list[int]:
    """The client port of each of ``count`` GETs (the same port: the same connection)."""
    return [port_of(session.get(url, stream=True)) for _ in range(count)]


def test_gets_share_one_connection_and_nothing_stays_in_flight(server):
    with requests.Session() as session:
        ports = local_ports(session, server.base_url + "/", 3)
        assert len(set(ports)) == 1, ports
        # an idle kept-alive connection is no request (the last answer's count is dropped just
        # after its bytes are sent, so it may still be counted as the client reads them)
        wait_for(lambda: server.requests_in_flight == 0, message="no request in flight")


def test_a_request_with_a_body_closes_its_connection(server):
    with requests.Session() as session:
        [before] = local_ports(session, server.base_url + "/", 1)
        response = session.post(server.base_url + "/api/v1/customers", json={})
        assert response.headers["Connection"] == "close"
        [after] = local_ports(session, server.base_url + "/", 1)
        assert after != before  # the POST took the kept-alive connection and closed it


def test_a_stopped_server_leaves_no_kept_alive_connection_answering():
    running = SandboxServer(SandboxConfig(port=0)).start()
    with requests.Session() as session:
        local_ports(session, running.base_url + "/", 1)
        running.stop()
        with pytest.raises(requests.ConnectionError):
            session.get(running.base_url + "/", timeout=5)


def test_an_http_1_0_client_gets_its_answer_and_the_connection_closes(server):
    host, port = server.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        raw.sendall(b"GET / HTTP/1.0\r\nHost: sandbox\r\n\r\n")
        answer = b""
        while chunk := raw.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 ")


def test_a_request_line_too_long_is_a_414_and_the_connection_closes(server):
    host, port = server.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        # exactly what the server reads of a line (65,537 bytes), so nothing is left unread
        # to turn its close into a reset
        raw.sendall(b"GET /" + b"a" * (65_537 - 5))
        answer = b""
        while chunk := raw.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 414 ")  # the reason phrase differs between Pythons
    wait_for(lambda: server.requests_in_flight == 0, message="no request in flight")
