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

Shutdown (`NewestFrameWorker.close`): the worker finishes the message it is
processing (the node's context is still valid, so its output is published),
takes no other, and reports what was left over as `in_flight`: the message
waiting in the slot, any handed in after close, and the one still being
processed if the thread did not end within the timeout. Those are counted
in the node's closing line, not logged as errors; an exception raised by a
message after the timeout (the node is being destroyed under it) is dropped
silently, any other is still reported through `on_error`.
"""
from __future__ import annotations

import threading
import traceback
from dataclasses import dataclass
from typing import Callable


class NewestFrameSlot:
    """One-message mailbox between the subscription callbacks and the worker."""

    def __init__(self):
        self._condition = threading.Condition()
        self._item = None
        self._closed = False
        self.refused = 0  # items put after close (never processed)

    def put(self, item) -> bool:
        """Store `item`; True when it replaced one the worker never took.
        After `close()` the item is refused (counted in `refused`)."""
        with self._condition:
            if self._closed:
                self.refused += 1
                return False
            replaced = self._item is not None
            self._item = item
            self._condition.notify()
            return replaced

    def take(self):
        """The newest item (waits for one); None once closed."""
        with self._condition:
            while self._item is None and not self._closed:
                self._condition.wait()
            if self._closed:
                return None
            item, self._item = self._item, None
            return item

    def close(self) -> int:
        """No more items; returns how many were waiting (0 or 1), now dropped."""
        with self._condition:
            self._closed = True
            waiting = int(self._item is not None)
            self._item = None
            self._condition.notify_all()
            return waiting


@dataclass
class WorkerClosed:
    """What `NewestFrameWorker.close` left: `in_flight` items never fully
    processed, and whether the thread ended in time."""
    in_flight: int
    stopped: bool


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
        self._busy = False
        self._abandoned = False
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
            self._busy = True
            try:
                self._process(item)
            except Exception as exc:
                if self._abandoned:  # closed under it: counted as in flight already
                    return
                try:
                    self._on_error(item, exc)
                except Exception:  # reporting failed: say so, but keep serving frames
                    traceback.print_exc()
            finally:
                self._busy = False

    def close(self, timeout: float = 3.0) -> WorkerClosed:
        """Stop taking items, let the current one finish (at most `timeout`
        seconds) and say what was left unprocessed."""
        waiting = self._slot.close()
        self._thread.join(timeout)
        stopped = not self._thread.is_alive()
        if not stopped:
            self._abandoned = True
        in_flight = waiting + self._slot.refused + (0 if stopped else int(self._busy))
        return WorkerClosed(in_flight=in_flight, stopped=stopped)
