"""Approximate-time synchronisation of 2..N message streams (stereo, multi-camera).

ROS' `message_filters.ApproximateTimeSynchronizer` is not installable here
(see docs/ros2-from-pypi.md), so this module pairs frames itself, in pure
Python, and is tested with synthetic stamps. It accounts for every message:
each one is either emitted in a set, still queued, or dropped and counted per
stream with the reason; ``received == emitted + dropped + queued`` holds for
every stream at all times.

Rule (stamps in integer nanoseconds; one queue per stream, sorted by stamp):
while every stream has a queued message, take the earliest head over all
streams (stamp t0, stream p; ties go to the lower stream index; every other
head is >= t0). Then

1. if another stream's head is later than t0 + slop, t0 can have no partner
   there (that stream has moved past it), so t0 is dropped (``no_partner``);
2. else if p's next queued message is strictly closer to some other stream's
   head than t0 is, that head belongs with p's next message; t0 is dropped
   (``no_partner``);
3. else the heads form a set, all within slop of t0 (so the set spans at most
   slop), and are emitted together at once.

A set is emitted as soon as it is complete, without waiting for later frames.
This is unambiguous when slop is below half the frame period (each message
then has at most one candidate per stream): choose slop that way, e.g. a few
milliseconds for hardware-triggered stereo.

Arrivals out of stamp order are inserted in order and handled normally as
long as no decision has passed them. A message that can no longer be matched
is dropped at once as ``late``: its stamp is at or before the last stamp
already released (emitted or dropped) from its own stream, or another stream
has already released messages up to stamp + slop (all its candidates are gone). A queue longer than `queue_size` drops its oldest
message (``queue_overflow``): this is what happens to the other streams when
one stream stops. `flush()` drops what is still queued (``unmatched_at_end``),
e.g. at the end of a bag.

Thread safety: `add` may be called from several threads (e.g. one
subscription callback per camera in a multi-threaded executor). The state is
guarded by a lock; the set and drop callbacks run after the lock is released,
in the calling thread.

`StampedBuffer` keeps the last few messages of one stream for a consumer
that looks one up by stamp, waiting a little for it when it is late (the
matcher's debug image waits for the camera frame its keypoints came from).
"""
from __future__ import annotations

import bisect
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

DROP_REASONS = ("no_partner", "queue_overflow", "late", "unmatched_at_end")


class SyncedSet(NamedTuple):
    """One synchronised set: stamps_ns[i] and messages[i] come from stream i."""

    stamps_ns: tuple[int, ...]
    messages: tuple[Any, ...]


@dataclass
class SyncStats:
    """Counters per stream (lists indexed by stream)."""

    received: list[int]
    emitted: list[int]
    queued: list[int]
    dropped: dict[str, list[int]] = field(default_factory=dict)
    sets_emitted: int = 0

    def dropped_total(self, stream: int) -> int:
        return sum(counts[stream] for counts in self.dropped.values())


class ApproximateTimeSynchronizer:
    """Groups messages of `num_streams` streams whose stamps lie within `slop_s`.

    callback(*messages) runs for each complete set; on_drop(stream, stamp_ns,
    reason) for each dropped message. `add` also returns the sets it completed.
    """

    def __init__(self, num_streams: int, *, queue_size: int = 10, slop_s: float = 0.005,
                 callback: Callable[..., None] | None = None,
                 on_drop: Callable[[int, int, str], None] | None = None):
        if int(num_streams) < 2:
            raise ValueError(f"num_streams must be >= 2; got {num_streams}")
        if int(queue_size) < 1:
            raise ValueError(f"queue_size must be >= 1; got {queue_size}")
        slop_s = float(slop_s)
        if not slop_s >= 0.0:
            raise ValueError(f"slop_s must be >= 0 seconds; got {slop_s}")
        self.num_streams = int(num_streams)
        self.queue_size = int(queue_size)
        self.slop_ns = int(round(slop_s * 1e9))
        self._callback = callback
        self._on_drop = on_drop
        self._lock = threading.Lock()
        # per stream: sorted list of (stamp_ns, arrival number, message)
        self._queues: list[list[tuple[int, int, Any]]] = [[] for _ in range(self.num_streams)]
        self._released: list[int | None] = [None] * self.num_streams
        self._arrivals = 0
        self._received = [0] * self.num_streams
        self._emitted = [0] * self.num_streams
        self._dropped = {reason: [0] * self.num_streams for reason in DROP_REASONS}
        self._sets = 0

    def add(self, stream: int, stamp_ns: int, message: Any) -> list[SyncedSet]:
        """Queue one message of `stream`; returns the sets this completed."""
        if not 0 <= int(stream) < self.num_streams:
            raise ValueError(f"stream must be in 0..{self.num_streams - 1}; got {stream}")
        stream, stamp_ns = int(stream), int(stamp_ns)
        drops: list[tuple[int, int, str]] = []
        with self._lock:
            self._received[stream] += 1
            if self._is_late(stream, stamp_ns):
                self._count_drop(stream, stamp_ns, "late", drops)
                sets = []
            else:
                self._arrivals += 1
                bisect.insort(self._queues[stream], (stamp_ns, self._arrivals, message),
                              key=lambda entry: (entry[0], entry[1]))
                sets = self._match(drops)
                queue = self._queues[stream]
                while len(queue) > self.queue_size:
                    self._release(stream, "queue_overflow", drops)
        self._notify(sets, drops)
        return sets

    def flush(self) -> int:
        """Drop every queued message (end of input); returns how many."""
        drops: list[tuple[int, int, str]] = []
        with self._lock:
            for stream, queue in enumerate(self._queues):
                while queue:
                    self._release(stream, "unmatched_at_end", drops)
        self._notify([], drops)
        return len(drops)

    def stats(self) -> SyncStats:
        with self._lock:
            return SyncStats(received=list(self._received), emitted=list(self._emitted),
                             queued=[len(q) for q in self._queues],
                             dropped={r: list(c) for r, c in self._dropped.items()},
                             sets_emitted=self._sets)

    # -- internals (called with the lock held) --------------------------------

    def _match(self, drops) -> list[SyncedSet]:
        sets = []
        queues = self._queues
        while all(queues):
            heads = [queue[0][0] for queue in queues]
            pivot = min(range(self.num_streams), key=lambda s: (heads[s], s))
            t0 = heads[pivot]
            others = [s for s in range(self.num_streams) if s != pivot]
            if any(heads[s] - t0 > self.slop_ns for s in others):
                self._release(pivot, "no_partner", drops)
                continue
            if len(queues[pivot]) > 1:
                t_next = queues[pivot][1][0]
                if any(abs(t_next - heads[s]) < heads[s] - t0 for s in others):
                    self._release(pivot, "no_partner", drops)
                    continue
            entries = [queue.pop(0) for queue in queues]
            for stream, entry in enumerate(entries):
                self._released[stream] = entry[0]
                self._emitted[stream] += 1
            self._sets += 1
            sets.append(SyncedSet(tuple(e[0] for e in entries), tuple(e[2] for e in entries)))
        return sets

    def _is_late(self, stream: int, stamp_ns: int) -> bool:
        own = self._released[stream]
        if own is not None and stamp_ns <= own:
            return True
        # Queued messages of a stream are all later than what it released, so a
        # stream that released past stamp + slop can never offer a partner.
        return any(released is not None and stamp_ns + self.slop_ns <= released
                   for other, released in enumerate(self._released) if other != stream)

    def _release(self, stream: int, reason: str, drops) -> None:
        stamp_ns = self._queues[stream].pop(0)[0]
        previous = self._released[stream]
        self._released[stream] = stamp_ns if previous is None else max(stamp_ns, previous)
        self._count_drop(stream, stamp_ns, reason, drops)

    def _count_drop(self, stream: int, stamp_ns: int, reason: str, drops) -> None:
        self._dropped[reason][stream] += 1
        drops.append((stream, stamp_ns, reason))

    def _notify(self, sets: list[SyncedSet], drops) -> None:
        if self._on_drop is not None:
            for drop in drops:
                self._on_drop(*drop)
        if self._callback is not None:
            for synced in sets:
                self._callback(*synced.messages)


class StampedBuffer:
    """The last `size` items of a stream with their stamps; `find` may be
    called from another thread than `add` and waits for a late item."""

    def __init__(self, size: int):
        self._items: deque = deque(maxlen=int(size))
        self._arrived = threading.Condition()

    def add(self, stamp_ns: int, item: Any) -> None:
        with self._arrived:
            self._items.append((int(stamp_ns), item))
            self._arrived.notify_all()

    def clear(self) -> None:
        with self._arrived:
            self._items.clear()

    def find(self, stamp_ns: int, wait_s: float = 0.0) -> Any:
        """The newest item stamped `stamp_ns`, waiting up to `wait_s` seconds
        for it to arrive; None when it does not."""
        def newest():
            return next((item for stamp, item in reversed(self._items) if stamp == stamp_ns),
                        None)

        with self._arrived:
            item = newest()
            if item is None and wait_s > 0:
                self._arrived.wait_for(lambda: newest() is not None, wait_s)
                item = newest()
        return item
