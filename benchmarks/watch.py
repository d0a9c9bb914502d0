"""What else the machine was doing while a suite ran: CPU used by processes outside the run.

The figures are ratios taken side by side on one machine, so a figure is only worth publishing
when nothing else competed for the cores. :class:`LoadWatch` samples ``/proc`` before and while a
suite runs and adds up the CPU of every process that is neither part of this benchmark (this
process and its descendants: gunicorn, Celery workers, the sandbox) nor one of the services it
drives (PostgreSQL, Redis). A suite during which those others used more than
:data:`BUSY_CORES` on average is marked busy, and the report refuses its figures.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

#: more than this many cores used by other processes, on average, and a figure is refused
BUSY_CORES = 0.5
#: the services a benchmark drives: their CPU is the benchmark's own
SERVICES = frozenset({"postgres", "postmaster", "redis-server"})
TICK = os.sysconf("SC_CLK_TCK")


def _processes() -> dict[int, tuple[int, str, int]]:
    """pid → (parent pid, command name, CPU ticks used so far) of every process."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        name = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        found[int(entry.name)] = (int(fields[1]), name, int(fields[11]) + int(fields[12]))
    return found


def _ours(processes: dict[int, tuple[int, str, int]], root: int) -> set[int]:
    """This benchmark's processes: ``root``, its descendants and the services' processes."""
    ours = {pid for pid, (_ppid, name, _ticks) in processes.items() if name in SERVICES}
    ours.add(root)
    for pid in processes:
        chain, seen = pid, set()
        while chain and chain not in seen:
            if chain in ours:
                ours.add(pid)
                break
            seen.add(chain)
            chain = processes.get(chain, (0, "", 0))[0]
    return ours


def _others_ticks(root: int) -> int:
    processes = _processes()
    ours = _ours(processes, root)
    return sum(ticks for pid, (_ppid, _name, ticks) in processes.items() if pid not in ours)


class LoadWatch:
    """Cores used by other processes: one second before the suite and all through it.

    Use as a context manager; ``result()`` gives ``{"before_cores", "during_cores",
    "during_max_cores", "busy"}``. Processes that start and end between two samples are missed,
    which errs on the side of publishing; the one-second samples catch anything sustained.
    """

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.root = os.getpid()
        self.samples: list[float] = []
        self.before = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _cores(self, seconds: float) -> float:
        first, start = _others_ticks(self.root), time.monotonic()
        if self._stop.wait(seconds):
            return -1.0
        elapsed = time.monotonic() - start
        return max(0, _others_ticks(self.root) - first) / TICK / elapsed

    def _sample(self) -> None:
        while not self._stop.is_set():
            cores = self._cores(self.interval)
            if cores >= 0:
                self.samples.append(cores)

    def __enter__(self) -> LoadWatch:
        self.before = self._cores(1.0)
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def result(self) -> dict:
        during = sum(self.samples) / len(self.samples) if self.samples else self.before
        return {
            "before_cores": round(self.before, 2),
            "during_cores": round(during, 2),
            "during_max_cores": round(max(self.samples, default=self.before), 2),
            "busy": self.before > BUSY_CORES or during > BUSY_CORES,
        }


class CoreUse:
    """Cores used, on average, by the parts of a run between ``__enter__`` and ``__exit__``:
    the process tree rooted at ``pid`` (a Celery worker and its children), PostgreSQL, Redis
    and the rest of the machine. A process that starts meanwhile counts from zero."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.parts: dict[str, float] = {}

    def __enter__(self) -> CoreUse:
        self._before, self._began = _processes(), time.monotonic()
        return self

    def __exit__(self, *exc_info) -> None:
        elapsed = time.monotonic() - self._began
        after = _processes()
        processes = {
            pid: (ppid, name, ticks - self._before.get(pid, (0, "", 0))[2])
            for pid, (ppid, name, ticks) in after.items()
        }
        tree = _ours({p: v for p, v in processes.items() if v[1] not in SERVICES}, self.pid)
        parts = dict.fromkeys(("worker", "postgres", "redis", "rest"), 0)
        for pid, (_ppid, name, used) in processes.items():
            if pid in tree:
                parts["worker"] += max(0, used)
            elif name in ("postgres", "postmaster"):
                parts["postgres"] += max(0, used)
            elif name == "redis-server":
                parts["redis"] += max(0, used)
            else:
                parts["rest"] += max(0, used)
        self.parts = {part: round(ticks / TICK / elapsed, 2) for part, ticks in parts.items()}
        self.parts["all"] = round(sum(ticks for ticks in parts.values()) / TICK / elapsed, 2)
