"""``manage.py plugipay_sandbox``: state kept across restarts by default, --fresh, console lines."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from django_plugipay.client import PlugipayClient
from django_plugipay.exceptions import APIError
from django_plugipay.testing import wait_for
from tests.test_doctor import closed_port

ROOT = Path(__file__).resolve().parents[1]


class Sandbox:
    """``manage.py plugipay_sandbox`` in a subprocess, run from ``cwd``."""

    def __init__(self, cwd, port, *args):
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "PLUGIPAY_BASE_URL": f"http://127.0.0.1:{port}",
        }
        env.pop("DATABASE_URL", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "django", "plugipay_sandbox", "--settings=tests.settings"]
            + ["--site-url", f"http://127.0.0.1:{closed_port()}", *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.banner = []
        for line in self.proc.stdout:
            self.banner.append(line)
            if "Ctrl-C" in line:
                break
        else:
            raise AssertionError("no banner: " + self.proc.stderr.read())
        self.client = PlugipayClient(
            key_id="pk_test_sandbox",
            secret="sk_test_sandbox",
            base_url=f"http://127.0.0.1:{port}",
            max_retries=0,
        )
        # Both pipes are drained all along: a console line per failed delivery must never block
        # the sandbox on a full pipe, and a test can wait for a line to appear.
        self.console: list[str] = []
        self._readers = [
            threading.Thread(target=self._drain, args=(pipe,), daemon=True)
            for pipe in (self.proc.stdout, self.proc.stderr)
        ]
        for reader in self._readers:
            reader.start()

    def _drain(self, pipe):
        for line in pipe:
            self.console.append(line)

    def wait_for_console(self, *words):
        wait_for(
            lambda: any(all(w in line for w in words) for line in self.console),
            timeout=60,
            message=f"a console line with {words}: {''.join(self.console)[-2000:]}",
        )

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)  # bounded: a loaded machine is slow
        for reader in self._readers:
            reader.join(timeout=10)
        console = "".join(self.console)
        assert self.proc.returncode == 0, console
        return console


@pytest.fixture
def port():
    return closed_port()


def test_state_survives_a_restart(tmp_path, port):
    first = Sandbox(tmp_path, port)
    state_file = tmp_path / ".plugipay_sandbox.json"
    assert f"state file      {state_file}" in "".join(first.banner)
    customer = first.client.create_customer({"email": "ana@example.com"})
    # the customer.created delivery could not reach the (closed) site: said on the console
    first.wait_for_console("customer.created", "failed", "attempt 1")
    first.stop()
    assert state_file.exists()

    second = Sandbox(tmp_path, port)
    assert second.client.get_customer(customer["id"])["email"] == "ana@example.com"
    second.stop()


def test_fresh_starts_empty(tmp_path, port):
    """``--fresh`` (passed through to ``python -m plugipay_sandbox``) ignores the saved state."""
    state_file = tmp_path / "state.json"
    state_file.write_text('{"format": 1, "seq": 5, "stores": {"customers": [{"id": "cus_1"}]}}')
    fresh = Sandbox(tmp_path, port, "--state-file", str(state_file), "--fresh")
    with pytest.raises(APIError) as caught:
        fresh.client.get_customer("cus_1")
    fresh.stop()
    assert caught.value.status == 404
    assert "cus_1" not in state_file.read_text()


def test_platform_keys_pass_through_and_accounts_survive_a_restart(tmp_path, port):
    """``--platform-key`` reaches ``python -m plugipay_sandbox``; its accounts are kept."""
    import plugipay

    first = Sandbox(tmp_path, port, "--platform-key", "pk_test_pf:sk_test_pf")
    assert "platform key    pk_test_pf / sk_test_pf" in "".join(first.banner)
    platform = plugipay.PlugipayClient(
        key_id="pk_test_pf", secret="sk_test_pf", base_url=f"http://127.0.0.1:{port}"
    )
    platform.admin.provision_workspace(account_id="acc_kept", partner="p", discount_rate=0.01)
    customer = platform.for_merchant("acc_kept").customers.create(email="kept@shop.test")
    with pytest.raises(APIError) as caught:  # the merchant key: another account's object
        first.client.get_customer(customer["id"])
    assert caught.value.status == 404
    first.stop()

    second = Sandbox(tmp_path, port, "--platform-key", "pk_test_pf:sk_test_pf")
    assert platform.admin.get_workspace("acc_kept")["partner"] == "p"
    kept = platform.for_merchant("acc_kept").customers.get(customer["id"])
    assert kept["accountId"] == "acc_kept"
    second.stop()
