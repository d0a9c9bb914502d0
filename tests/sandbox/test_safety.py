"""Other web pages cannot drive the sandbox: foreign Origin / Sec-Fetch-Site, non-JSON control
bodies and Host names it was not started for are refused; tools on this machine pass."""

import pytest
import requests

from plugipay_sandbox import SandboxConfig, SandboxServer, safety
from plugipay_sandbox.__main__ import build_parser


def offset(sandbox):
    return requests.get(f"{sandbox.base_url}/_sandbox/state", timeout=10).json()["data"]["clock"][
        "offsetSeconds"
    ]


def advance(sandbox, **kwargs):
    return requests.post(f"{sandbox.base_url}/_sandbox/clock/advance", timeout=10, **kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        # What a no-cors fetch() from another page sends.
        {"data": '{"seconds": 86400}', "headers": {"Content-Type": "text/plain;charset=UTF-8"}},
        # An HTML form on another site.
        {"data": {"seconds": "86400"}},
        {"json": {"seconds": 86400}, "headers": {"Origin": "https://evil.test"}},
        {"json": {"seconds": 86400}, "headers": {"Origin": "null"}},
        {"json": {"seconds": 86400}, "headers": {"Sec-Fetch-Site": "cross-site"}},
        {"json": {"seconds": 86400}, "headers": {"Sec-Fetch-Site": "same-site"}},
        {"json": {"seconds": 86400}, "headers": {"Host": "evil.test"}},
    ],
    ids=["text-plain", "form", "origin", "origin-null", "cross-site", "same-site", "host"],
)
def test_control_routes_refuse_what_another_site_can_send(sandbox, kwargs):
    response = advance(sandbox, **kwargs)
    assert response.status_code in (400, 403, 415), response.text
    assert response.json()["error"]["code"] in (
        "cross_site_refused",
        "unsupported_media_type",
        "disallowed_host",
    )
    assert offset(sandbox) == 0


def test_tools_and_the_sandbox_itself_still_drive_it(sandbox):
    assert advance(sandbox, json={"seconds": 10}).status_code == 200
    own = {"Origin": sandbox.base_url, "Sec-Fetch-Site": "same-origin"}
    assert advance(sandbox, json={"seconds": 10}, headers=own).status_code == 200
    typed = {"Content-Type": "application/json; charset=utf-8"}
    assert advance(sandbox, data='{"seconds": 10}', headers=typed).status_code == 200
    # A bodiless POST (requests.post(url), curl -X POST) needs no content type.
    flushed = requests.post(f"{sandbox.base_url}/_sandbox/deliveries/flush", timeout=30)
    assert flushed.status_code == 200
    assert offset(sandbox) == 30


def test_control_gets_from_another_site_are_refused(sandbox):
    response = requests.get(
        f"{sandbox.base_url}/_sandbox/state", headers={"Sec-Fetch-Site": "cross-site"}, timeout=10
    )
    assert response.status_code == 403


@pytest.mark.parametrize("path", ["/_sandbox/state", "/dashboard/payments", "/api/v1/customers"])
def test_unknown_host_is_refused_everywhere(sandbox, path):
    port = sandbox.config.port
    for host in ("evil.test", f"evil.test:{port}", f"127.0.0.1.evil.test:{port}", "127.0.0.1:1"):
        response = requests.get(sandbox.base_url + path, headers={"Host": host}, timeout=10)
        assert response.status_code == 400, host
        assert "--allowed-host" in response.json()["error"]["message"]


def test_loopback_names_with_the_port_are_answered(sandbox):
    port = sandbox.config.port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}", f"[::1]:{port}"):
        response = requests.get(
            f"{sandbox.base_url}/dashboard/payments", headers={"Host": host}, timeout=10
        )
        assert response.status_code == 200, host


def test_dashboard_forms_refuse_cross_site_fetch_metadata(sandbox, sdk):
    before = len(sdk.webhook_endpoints.list())
    response = requests.post(
        f"{sandbox.base_url}/dashboard/webhooks",
        data={"url": "https://evil.test/hook", "events": "*"},
        headers={"Sec-Fetch-Site": "cross-site"},
        timeout=10,
    )
    assert response.status_code == 403 and len(sdk.webhook_endpoints.list()) == before
    # A link from another site to a dashboard page still opens it.
    page = requests.get(
        f"{sandbox.base_url}/dashboard/payments", headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert page.status_code == 200
    assert page.headers["X-Frame-Options"] == "DENY"


def test_allowed_hosts_and_public_url_are_answered():
    config = SandboxConfig(
        port=0,
        allowed_hosts=("sandbox.internal", "proxy.test:9000"),
        public_url="https://pay.example.test",
    )
    with SandboxServer(config):
        url = f"http://127.0.0.1:{config.port}/_sandbox/state"
        for host, status in (
            ("sandbox.internal:1234", 200),
            ("sandbox.internal", 200),
            ("proxy.test:9000", 200),
            ("proxy.test:9001", 400),
            ("pay.example.test:443", 200),
            ("pay.example.test:80", 400),
        ):
            response = requests.get(url, headers={"Host": host}, timeout=10)
            assert response.status_code == status, host
        origin = {"Origin": "http://sandbox.internal:1234"}
        assert requests.post(url[:-5] + "reset", headers=origin, timeout=10).status_code == 200


def test_the_command_line_takes_allowed_hosts_and_star():
    args = build_parser().parse_args(["--allowed-host", "a.test", "--allowed-host", "b.test:1"])
    assert args.allowed_host == ["a.test", "b.test:1"]
    star = SandboxConfig(port=8787, allowed_hosts=("*",))
    assert safety.host_allowed(star, "anything.test:1")
    assert not safety.host_allowed(SandboxConfig(port=8787), "localhost:8788")
    assert safety.split_host("[::1]:8787") == ("[::1]", 8787)
    assert safety.split_host("[::1]") == ("[::1]", None)
    assert safety.split_host("host:port")[1] == -1


def test_hosted_page_forms_refuse_other_sites(sandbox, session_factory, control):
    session = session_factory()
    form = {"name": "Ada", "number": "4242 4242 4242 4242", "expiry": "12/39", "cvc": "123"}
    url = f"{sandbox.base_url}/c/{session['id']}/pay"
    for headers in ({"Origin": "https://evil.test"}, {"Sec-Fetch-Site": "cross-site"}):
        refused = requests.post(url, data=form, headers=headers, allow_redirects=False, timeout=10)
        assert refused.status_code == 403
    _, state = control("GET", "state")
    assert [s["status"] for s in state["data"]["sessions"]] == ["open"]
    own = {"Origin": sandbox.base_url, "Sec-Fetch-Site": "same-origin"}
    paid = requests.post(url, data=form, headers=own, allow_redirects=False, timeout=10)
    assert paid.status_code == 303
    # Opening the page from a link on another site still works.
    page = requests.get(
        f"{sandbox.base_url}/c/{session['id']}", headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert page.status_code == 200
