"""An in-process ROS node that watches topics: used by the demo and the tests.

`Probe` owns its own rclpy Context (so it never disturbs another rclpy user in
the same process), spins in a background thread, and records messages with
their arrival time. The caller's thread publishes and waits on recordings.
It installs no signal handlers: Ctrl-C stays a KeyboardInterrupt for the caller.

Waiting: every wait is on a condition, never a fixed pause. The probe's
publishers and subscriptions report DDS matching (matched events), each
recorded message and each future it is asked to wait for wake the waiters,
so `wait_until` re-checks its condition as soon as something happened; a
condition on state the probe is not told about (the ROS graph, a process)
is re-checked every `recheck` seconds as well.

The probe sees its own end of a link. The other end is the node's: a
reliable volatile writer sends only to the readers it has matched, so before
the first message that must arrive, wait until the node reports the link in
/diagnostics (node_base: `<topic>_subscribers`, `<topic>_publishers`; the
tests' `ros_harness.wait_for_links`).
"""
from __future__ import annotations

import threading
import time
from typing import Callable

import rclpy
from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions

RECHECK_S = 0.1  # longest time before a condition nothing notifies about is checked again


class Recording:
    """Messages received on one topic, in arrival order, with arrival times (ns)."""

    def __init__(self, probe: "Probe", topic: str, keep: int = 0):
        self.topic = topic
        self._probe = probe
        self._keep = keep
        self._condition = threading.Condition()
        self.messages: list = []
        self.arrival_ns: list[int] = []
        self._last_arrival = -float("inf")  # time.monotonic() of the newest message
        self.subscription = None

    def _append(self, msg) -> None:
        now = time.time_ns()
        with self._condition:
            self.messages.append(msg)
            self.arrival_ns.append(now)
            self._last_arrival = time.monotonic()
            if self._keep and len(self.messages) > self._keep:
                del self.messages[0], self.arrival_ns[0]
            self._condition.notify_all()
        self._probe._notify()

    def __len__(self) -> int:
        with self._condition:
            return len(self.messages)

    def snapshot(self) -> list:
        with self._condition:
            return list(self.messages)

    def wait_for(self, predicate: Callable = lambda msg: True, timeout: float = 10.0):
        """The first recorded message that satisfies `predicate` (waiting up to
        `timeout` seconds); None if none arrives."""
        deadline = time.monotonic() + timeout
        checked = 0
        with self._condition:
            while True:
                for msg in self.messages[checked:]:
                    if predicate(msg):
                        return msg
                checked = len(self.messages)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._condition.wait(remaining)

    def wait_for_quiet(self, quiet_s: float, timeout: float) -> bool:
        """Until no message arrived for `quiet_s` seconds, counted from now at
        the earliest (True), or `timeout` seconds passed (False)."""
        started = time.monotonic()
        deadline = started + timeout
        with self._condition:
            while True:
                now = time.monotonic()
                quiet_until = max(started, self._last_arrival) + quiet_s
                if now >= quiet_until:
                    return True
                if now >= deadline:
                    return False
                self._condition.wait(min(quiet_until, deadline) - now)

    def clear(self) -> None:
        with self._condition:
            self.messages.clear()
            self.arrival_ns.clear()

    def stop(self) -> None:
        if self.subscription is not None:
            self._probe.node.destroy_subscription(self.subscription)
            self.subscription = None


class Probe:
    def __init__(self, name: str, domain_id: int):
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id,
                   signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node(name, context=self.context)
        self._changed = threading.Condition()  # notified by _notify (see the module doc)
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._spin, name=f"{name}-spin", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self.context.ok() and not self._stopping.is_set():
            try:
                self._executor.spin_once(timeout_sec=0.1)
            except (ExternalShutdownException, rclpy.executors.ShutdownException):
                return
            except Exception:
                if not self.context.ok():
                    return
                raise

    def _notify(self, *_) -> None:
        """Something happened (a message, a match, a future): waiters check again."""
        with self._changed:
            self._changed.notify_all()

    def record(self, msg_type, topic: str, qos, keep: int = 0) -> Recording:
        """Subscribe and record; `keep` > 0 keeps only the newest `keep` messages."""
        recording = Recording(self, topic, keep)
        recording.subscription = self.node.create_subscription(
            msg_type, topic, recording._append, qos,
            event_callbacks=SubscriptionEventCallbacks(matched=self._notify))
        return recording

    def publisher(self, msg_type, topic: str, qos):
        return self.node.create_publisher(
            msg_type, topic, qos, event_callbacks=PublisherEventCallbacks(matched=self._notify))

    def now_msg(self):
        return self.node.get_clock().now().to_msg()

    def wait_until(self, condition: Callable[[], bool], timeout: float,
                   recheck: float = RECHECK_S) -> bool:
        """True as soon as `condition()` holds, False after `timeout` seconds.
        Checked again whenever the probe is notified (module doc) and at least
        every `recheck` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(min(remaining, recheck))
        return True

    def wait_for_future(self, future, timeout: float) -> bool:
        """True once an rclpy future (a service call) is done."""
        future.add_done_callback(self._notify)
        return self.wait_until(future.done, timeout)

    def wait_for_subscribers(self, publisher, count: int = 1, timeout: float = 10.0) -> bool:
        """Until this probe's `publisher` has matched `count` subscriptions (its
        end of the links: a reliable publisher then delivers what it sends)."""
        return self.wait_until(lambda: publisher.get_subscription_count() >= count, timeout)

    def wait_for_publishers(self, topic: str, count: int = 1, timeout: float = 10.0) -> bool:
        """Until the ROS graph shows `count` publishers on `topic`."""
        return self.wait_until(lambda: self.node.count_publishers(topic) >= count, timeout)

    def wait_for_recordings(self, *recordings: Recording, timeout: float = 10.0) -> bool:
        """Until every recording's subscription has matched a publisher: the
        probe's end of each link (the publisher's end: see the module doc)."""
        return self.wait_until(lambda: all(r.subscription.get_publisher_count() >= 1
                                           for r in recordings), timeout)

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=2.0)
        self._executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self.context.try_shutdown()
