"""Newest-frame policy: process the most recent message, skip (and count) older ones.

A node's subscription callback hands each message to `NewestFrameWorker.submit`,
which only stores it in a one-message slot; the worker thread takes the newest
message and processes it. A message replaced before the worker took it is
skipped and counted. So a node slower than its input never builds a queue:
latency stays one processing time (plus the wait for the current frame to
finish), instead of growing with a backlog, which is what a tracker wants.

The executor thread stays free to receive (and to serve parameters and
diagnostics) while the worker runs; numpy, OpenCV and the inference runtimes
release the GIL during the heavy work.
"""
from __future__ import annotations

import threading
import traceback
from typing import Callable


class NewestFrameSlot:
    """One-message mailbox between the subscription callbacks and the worker."""

    def __init__(self):
        self._condition = threading.Condition()
        self._item = None
        self._closed = False

    def put(self, item) -> bool:
        """Store `item`; True when it replaced one the worker never took."""
        with self._condition:
            replaced = self._item is not None
            self._item = item
            self._condition.notify()
            return replaced

    def take(self):
        """The newest item (waits for one); None once closed."""
        with self._condition:
            while self._item is None and not self._closed:
                self._condition.wait()
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._item = None
            self._condition.notify_all()


class NewestFrameWorker:
    """A thread that runs `process(item)` on the newest submitted item.

    `on_skipped()` is called for every item replaced before processing;
    `on_error(item, exc)` for every exception `process` raises (the worker
    carries on with the next item: one bad message never stops a node).
    """

    def __init__(self, name: str, process: Callable, on_skipped: Callable[[], None],
                 on_error: Callable):
        self._slot = NewestFrameSlot()
        self._process = process
        self._on_skipped = on_skipped
        self._on_error = on_error
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item) -> None:
        if self._slot.put(item):
            self._on_skipped()

    def _run(self) -> None:
        while True:
            item = self._slot.take()
            if item is None:
                return
            try:
                self._process(item)
            except Exception as exc:
                try:
                    self._on_error(item, exc)
                except Exception:  # reporting failed: say so, but keep serving frames
                    traceback.print_exc()

    def close(self, timeout: float = 5.0) -> None:
        self._slot.close()
        self._thread.join(timeout)
