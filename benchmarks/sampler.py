"""Where an event's CPU goes: a statistical sampler on CPU time (``BENCH_PROFILE=1``).

A deterministic profiler (cProfile) charges every Python call its own bookkeeping, which
inflates small, frequent calls several times over; a sampler does not. ``ITIMER_PROF`` fires
after each ``interval`` of CPU used by this process (user and system), and each firing records
the main thread's stack. A function's inclusive share is the fraction of samples with it
anywhere on the stack; its own share, the fraction where it is the innermost app frame.
"""

from __future__ import annotations

import collections
import signal
from collections.abc import Callable
from pathlib import Path
from types import FrameType

APP = f"{Path('django_plugipay')}/"
#: frames that mean "transaction control": atomic blocks and the backend's commit/rollback
TRANSACTION = (
    (f"{Path('django/db/transaction.py')}", None),
    (f"{Path('django/db/backends/base/base.py')}", {"commit", "rollback", "_commit", "_rollback"}),
)
DRIVER = f"{Path('psycopg')}/"


def _label(frame: FrameType) -> str | None:
    filename = frame.f_code.co_filename
    at = filename.rfind(APP)
    if at < 0:
        return None
    module = filename[at:].removesuffix(".py").replace("/", ".")
    return f"{module}.{frame.f_code.co_name}"


def _is_transaction(frame: FrameType) -> bool:
    filename, name = frame.f_code.co_filename, frame.f_code.co_name
    return any(
        filename.endswith(path) and (names is None or name in names) for path, names in TRANSACTION
    )


class Sampler:
    """Sample the main thread's stack on every ``interval`` seconds of this process's CPU."""

    def __init__(self, interval: float = 0.001) -> None:
        self.interval = interval
        self.samples = 0
        self.inclusive: collections.Counter[str] = collections.Counter()
        self.own: collections.Counter[str] = collections.Counter()

    def _record(self, _signum: int, frame: FrameType | None) -> None:
        self.samples += 1
        seen: set[str] = set()
        innermost = None
        while frame is not None:
            label = _label(frame)
            if label is None and _is_transaction(frame):
                label = "transaction control (atomic, BEGIN/COMMIT)"
            elif label is None and DRIVER in frame.f_code.co_filename:
                label = "database driver (psycopg: send, wait, parse)"
            if label is not None:
                if innermost is None:
                    innermost = label
                seen.add(label)
            frame = frame.f_back
        if not seen:
            seen.add("outside the app (request handling, test client, baseline)")
            innermost = "outside the app (request handling, test client, baseline)"
        self.inclusive.update(seen)
        if innermost:
            self.own[innermost] += 1

    def run(self, work: Callable[[], None]) -> None:
        previous = signal.signal(signal.SIGPROF, self._record)
        signal.setitimer(signal.ITIMER_PROF, self.interval, self.interval)
        try:
            work()
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0, 0)
            signal.signal(signal.SIGPROF, previous)

    def table(self, top: int = 18) -> list[dict]:
        """The ``top`` labels by own share (the work itself, with the library calls it makes),
        then inclusive: ``{"work", "inclusive", "own"}`` in percent."""
        total = max(self.samples, 1)
        ranked = sorted(
            self.inclusive, key=lambda label: (-self.own[label], -self.inclusive[label])
        )
        return [
            {
                "work": label,
                "inclusive": round(100 * count / total, 1),
                "own": round(100 * self.own[label] / total, 1),
            }
            for label in ranked[:top]
            for count in (self.inclusive[label],)
        ]
