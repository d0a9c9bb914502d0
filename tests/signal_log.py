"""The suite's one signal recorder: every django_plugipay signal, in order, in any process.

In the test process the ``signal_log`` fixture records each signal as it is sent, as
``(signal name, plugipay id)``. A Celery worker of the service suite imports this module (through
``tests.celery``) and, when ``PLUGIPAY_SIGNAL_LOG`` names a file, appends a line there once the
transaction that sent the signal commits; ``SignalLog.committed()`` reads those lines, so a
rolled-back transition is never counted.
"""

import os

from django.db import transaction
from django.dispatch import Signal

from django_plugipay import signals

NAMES = sorted(n for n, v in vars(signals).items() if isinstance(v, Signal))


def _ident(instance) -> str:
    return getattr(instance, "plugipay_id", None) or getattr(instance, "event_id", None) or ""


class SignalLog(list):
    """``(signal name, plugipay id)`` for every signal sent in this process while recording."""

    def __init__(self, path=None):
        super().__init__()
        self.path = path

    def names(self) -> list[str]:
        return [name for name, _ in self]

    def committed(self) -> list[tuple[str, str]]:
        """What every process sharing ``path`` committed, in commit order."""
        if self.path is None or not os.path.exists(self.path):
            return []
        with open(self.path, encoding="utf-8") as handle:
            return [tuple(line.split()[:2]) for line in handle if line.strip()]

    def connect(self) -> None:
        for name in NAMES:
            getattr(signals, name).connect(
                self._receiver(name), weak=False, dispatch_uid=self._uid(name)
            )

    def disconnect(self) -> None:
        for name in NAMES:
            getattr(signals, name).disconnect(dispatch_uid=self._uid(name))

    def _uid(self, name: str) -> str:
        return f"signal_log_{id(self)}_{name}"

    def _receiver(self, name: str):
        def receiver(sender, instance, event, **kwargs):
            self.append((name, _ident(instance)))

        return receiver


def _file_writer(name):
    def receiver(sender, instance, event, **kwargs):
        path = os.environ.get("PLUGIPAY_SIGNAL_LOG")
        if not path:
            return
        line = f"{name} {_ident(instance)} {os.getpid()}\n"

        def write():
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(line)

        transaction.on_commit(write)

    return receiver


FILE_WRITERS = [_file_writer(name) for name in NAMES]
for _name, _receiver in zip(NAMES, FILE_WRITERS, strict=True):
    getattr(signals, _name).connect(_receiver, dispatch_uid=f"signal_log_file_{_name}")
