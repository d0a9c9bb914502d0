"""gunicorn hooks for the benchmark: each worker reports the class and threads it runs with."""

import json
import os
from pathlib import Path


def post_worker_init(worker):
    """Write ``<pid>.json`` so the harness reports the configuration that actually ran."""
    folder = os.environ.get("BENCH_WORKER_REPORTS")
    if not folder:
        return
    names = {"ThreadWorker": "gthread", "SyncWorker": "sync"}
    kind = type(worker).__name__
    threads = worker.cfg.threads if kind == "ThreadWorker" else 1  # sync runs one at a time
    report = {"worker_class": names.get(kind, kind), "threads": threads}
    Path(folder, f"{os.getpid()}.json").write_text(json.dumps(report))
