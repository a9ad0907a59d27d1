"""An in-process ROS node that watches topics: used by the demo and the tests.

`Probe` owns its own rclpy Context (so it never disturbs another rclpy user in
the same process), spins in a background thread, and records messages with
their arrival time. The caller's thread publishes and waits on recordings.
It installs no signal handlers: Ctrl-C stays a KeyboardInterrupt for the caller.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions


class Recording:
    """Messages received on one topic, in arrival order, with arrival times (ns)."""

    def __init__(self, probe: "Probe", topic: str, keep: int = 0):
        self.topic = topic
        self._probe = probe
        self._keep = keep
        self._condition = threading.Condition()
        self.messages: list = []
        self.arrival_ns: list[int] = []
        self.subscription = None

    def _append(self, msg) -> None:
        now = time.time_ns()
        with self._condition:
            self.messages.append(msg)
            self.arrival_ns.append(now)
            if self._keep and len(self.messages) > self._keep:
                del self.messages[0], self.arrival_ns[0]
            self._condition.notify_all()

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

    def record(self, msg_type, topic: str, qos, keep: int = 0) -> Recording:
        """Subscribe and record; `keep` > 0 keeps only the newest `keep` messages."""
        recording = Recording(self, topic, keep)
        recording.subscription = self.node.create_subscription(msg_type, topic,
                                                               recording._append, qos)
        return recording

    def publisher(self, msg_type, topic: str, qos):
        return self.node.create_publisher(msg_type, topic, qos)

    def now_msg(self):
        return self.node.get_clock().now().to_msg()

    @staticmethod
    def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(interval)
        return condition()

    def wait_for_subscribers(self, publisher, count: int = 1, timeout: float = 10.0) -> bool:
        return self.wait_until(lambda: publisher.get_subscription_count() >= count, timeout)

    def wait_for_publishers(self, topic: str, count: int = 1, timeout: float = 10.0) -> bool:
        return self.wait_until(lambda: self.node.count_publishers(topic) >= count, timeout)

    def wait_for_graph(self, topic: str, publishers: int = 0, subscriptions: int = 0,
                       timeout: float = 10.0, settle: float = 0.5) -> bool:
        """Wait until this probe sees `publishers` / `subscriptions` on `topic`
        (any node's), then `settle` seconds more: discovery is per participant,
        so a link the probe sees may need a moment more on the two nodes it
        joins (a reliable volatile writer drops what it sends before that)."""
        ok = self.wait_until(lambda: self.node.count_publishers(topic) >= publishers
                             and self.node.count_subscribers(topic) >= subscriptions, timeout)
        time.sleep(settle)
        return ok

    def wait_for_recordings(self, *recordings: Recording, timeout: float = 10.0,
                            settle: float = 0.5) -> bool:
        """Wait until every recording is matched with a publisher, then
        `settle` seconds for the publishers' side of the same links."""
        ok = self.wait_until(lambda: all(r.subscription.get_publisher_count() >= 1
                                         for r in recordings), timeout)
        time.sleep(settle)
        return ok

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=2.0)
        self._executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self.context.try_shutdown()
