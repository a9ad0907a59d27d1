"""SIGINT/SIGTERM as a request to stop, for processes that close themselves in order.

Used by the node executables (`ros.node_main.run`), `process_bag`, the demo
and the soak. The default reaction to Ctrl-C, a KeyboardInterrupt raised
wherever the main thread happens to be, cannot be closed cleanly after: it
lands in the middle of a thread join, a bag write or a DDS call, and a
terminal's Ctrl-C under `ros2 launch` arrives twice (from the terminal and
forwarded by launch), the second one while the first is being handled.
Here the first signal is recorded and the program stops at its next check;
from then on both signals are ignored (SIG_IGN, which, unlike a Python
handler, stays in force through the interpreter's teardown).
"""
from __future__ import annotations

import signal

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class ShutdownSignals:
    """Installs SIGINT/SIGTERM handlers; `received` names the first signal.

    With `starting` (or `interrupt` set later) the first signal also raises
    KeyboardInterrupt, for code that is not yet (or never) in a loop that
    checks `received`. Every later signal is ignored; `closing()` ignores
    them from now on for a program that stops on its own.
    """

    def __init__(self, starting: bool = False):
        self.received: str | None = None
        self.starting = starting
        self._previous = {number: signal.signal(number, self._handle) for number in STOP_SIGNALS}

    def restore(self) -> None:
        """The handlers from before, for a caller that goes on (e.g. `main()`
        called from a test), unless a signal came: then the process is
        stopping and both stay ignored."""
        if self.received is None:
            for number, previous in self._previous.items():
                signal.signal(number, previous)

    def _handle(self, number, frame) -> None:
        if self.received is not None:
            return
        self.received = signal.Signals(number).name
        self.closing()
        if self.starting:
            raise KeyboardInterrupt(self.received)

    @staticmethod
    def closing() -> None:
        """Ignore SIGINT/SIGTERM from now on (the process is closing)."""
        for number in STOP_SIGNALS:
            signal.signal(number, signal.SIG_IGN)
