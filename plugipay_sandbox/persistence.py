"""The optional JSON state file: a generic walk over the store's object maps, atomic writes.

An *object map* is any attribute of the store that is a ``dict`` of ``id -> object`` (customers,
sessions, refunds, endpoints, …), so stores added later are saved and restored with no list to
keep up to date. Writes go to a temporary file in the same directory, then ``os.replace``, so a
crash never leaves half a file.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
import threading
from typing import Any

FORMAT = 1
#: Seconds between checks for changes to write (the debounce of the background saver).
SAVE_INTERVAL = 0.5


class StateFileError(ValueError):
    """The state file cannot be read back."""


def object_maps(store: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """Every ``id -> object`` dict held by the store, by attribute name."""
    return {
        name: value
        for name, value in vars(store).items()
        if not name.startswith("_") and isinstance(value, dict) and _is_object_map(value)
    }


def _is_object_map(value: dict) -> bool:
    return all(
        isinstance(key, str) and isinstance(obj, dict) and obj.get("id") == key
        for key, obj in dict.items(value)
    )


def snapshot(store: Any) -> str:
    """The store as JSON text (taken under its lock)."""
    with store.lock:
        maps = {
            # dict.values: every account's objects, whatever scope the caller acts in
            name: sorted(copy.deepcopy(list(dict.values(objects))), key=lambda o: o.get("_seq", 0))
            for name, objects in object_maps(store).items()
        }
        data = {
            "format": FORMAT,
            "seq": store._seq,
            "clockOffset": store.clock_offset,
            "stores": maps,
        }
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


def write(path: str, text: str) -> None:
    """Replace ``path`` with ``text`` atomically."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".plugipay_sandbox.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save(store: Any, path: str) -> None:
    with _write_lock(path):
        write(path, snapshot(store))


def load(store: Any, path: str) -> None:
    """Restore the object maps saved in ``path``; keep endpoints given on the command line.

    An endpoint the command line registered (``--forward-to``) wins over the saved one, except
    that a saved endpoint with the same URL keeps its id (and delivery log) and takes the new
    secret.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except ValueError as exc:
        raise StateFileError(
            f"the state file {path} is not valid JSON ({exc}); delete it or start with --fresh"
        ) from exc
    saved = data.get("stores") if "stores" in data else data  # files written before FORMAT 1
    with store.lock:
        maps = object_maps(store)
        cli = {e["url"]: e for e in store.endpoints.values() if e.get("_origin") == "cli"}
        for name, objects in saved.items():
            if name not in maps or not isinstance(objects, list):
                continue
            target = maps[name]
            for obj in objects:
                if isinstance(obj, dict) and isinstance(obj.get("id"), str):
                    target[obj["id"]] = obj
        for endpoint in list(store.endpoints.values()):
            if endpoint.get("_origin") != "cli" or endpoint["url"] not in cli:
                continue
            fresh = cli[endpoint["url"]]
            if fresh is not endpoint:
                if store.config.webhook_secret:  # else keep the saved (random) secret
                    endpoint["_secret"] = fresh["_secret"]
                del store.endpoints[fresh["id"]]
        for endpoint in list(store.endpoints.values()):
            if endpoint.get("_origin") == "cli" and endpoint["url"] not in cli:
                del store.endpoints[endpoint["id"]]  # an old --forward-to, no longer given
        store._seq = max(store._seq, int(data.get("seq", 0)))
        offset = data.get("clockOffset", data.get("clock", {}).get("offsetSeconds", 0.0))
        store.clock_offset = float(offset)


_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _write_lock(path: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(os.path.abspath(path), threading.Lock())


class Saver:
    """Writes the store to ``path`` shortly after it changes, and once more on ``stop()``."""

    def __init__(self, store: Any, path: str, interval: float = SAVE_INTERVAL) -> None:
        self.store, self.path, self.interval = store, path, interval
        self._stop = threading.Event()
        self._written: str | None = None
        self._thread = threading.Thread(target=self._run, name="plugipay-sandbox-saver")
        self._thread.daemon = True

    def start(self) -> Saver:
        self._thread.start()
        return self

    def save_if_changed(self) -> bool:
        with _write_lock(self.path):
            text = snapshot(self.store)
            if text == self._written:
                return False
            write(self.path, text)
            self._written = text
            return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.save_if_changed()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.save_if_changed()
