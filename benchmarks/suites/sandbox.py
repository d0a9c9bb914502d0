"""The sandbox's read throughput: ``GET`` one checkout session from concurrent clients."""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from benchmarks.harness import free_port


def run(concurrency: int = 8, seconds: float = 4.0, runs: int = 3) -> dict:
    import requests

    from django_plugipay.client import PlugipayClient
    from plugipay_sandbox import SandboxConfig, SandboxServer

    server = SandboxServer(SandboxConfig(port=free_port())).start()
    try:
        client = PlugipayClient(
            key_id="pk_test_sandbox", secret="sk_test_sandbox", base_url=server.base_url
        )
        session = client.create_checkout_session(
            {
                "amount": 1000,
                "currency": "IDR",
                "methods": ["card"],
                "successUrl": "https://a.test",
                "cancelUrl": "https://b.test",
            }
        )
        path = f"/api/v1/checkout-sessions/{session['id']}"
        rates = []
        for _ in range(runs):
            done = [0] * concurrency
            stop = time.perf_counter() + seconds

            def reader(slot: int, done=done, stop=stop) -> None:
                http = requests.Session()
                while time.perf_counter() < stop:
                    headers = client._headers("GET", path, b"", None)
                    http.get(server.base_url + path, headers=headers, timeout=10)
                    done[slot] += 1

            with ThreadPoolExecutor(concurrency) as pool:
                list(pool.map(reader, range(concurrency)))
            rates.append(sum(done) / seconds)
    finally:
        server.stop()
    return {
        "concurrency": concurrency,
        "runs_rps": [round(r, 1) for r in rates],
        "median_rps": round(statistics.median(rates), 1),
    }
