"""The `main()` every node executable shares: init, build, spin, shut down cleanly.

* A node that cannot start (bad parameter, missing weights or video) logs one
  FATAL line naming the problem and the process exits with status 1, so a
  launcher or the demo can tell "died at start-up" from "stopped". It exits
  without the interpreter's teardown (`_exit_after_failed_start`): the node
  whose constructor raised is half built and cannot be destroyed, and once, on
  a loaded machine, the process then hung after its FATAL line for more than
  30 s.
* SIGINT/SIGTERM (rclpy's signal handlers) end the spin; the node's `close()`
  stops its worker threads before the context shuts down; exit status 0.
* A node may finish on its own (the player after `max_frames`) by setting
  `finished = True`.
"""
from __future__ import annotations

import os
import sys
import threading

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor


def _exit_after_failed_start(status: int, shutdown_timeout: float = 5.0) -> None:
    """Shut the context down (at most `shutdown_timeout` seconds) and end the
    process with `status`, skipping the interpreter's teardown: a start-up
    failure has nothing to save, and the DDS entities of a half-built node must
    not be able to keep the process alive."""
    shutdown = threading.Thread(target=rclpy.try_shutdown, daemon=True)
    shutdown.start()
    shutdown.join(shutdown_timeout)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def apply_blas_threads(node, count: int) -> str:
    """The node's `blas_threads` parameter applied to this process; returns
    what is in force, for the node's ready line."""
    from ..matching import limit_blas_threads
    applied = limit_blas_threads(count)
    if count and applied is None:
        node.get_logger().warning("threadpoolctl is not installed: blas_threads is not applied "
                                  "(BLAS uses its default thread count)")
    return str(applied) if applied else "default"


def run(node_class, args=None) -> int:
    rclpy.init(args=args if args is not None else sys.argv)
    logger = rclpy.logging.get_logger(getattr(node_class, "DEFAULT_NAME", node_class.__name__))
    try:
        node = node_class()
    except Exception as exc:  # every start-up problem ends here with its message
        logger.fatal(f"cannot start: {exc}")
        _exit_after_failed_start(1)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while rclpy.ok() and not getattr(node, "finished", False):
            executor.spin_once(timeout_sec=0.25)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        close = getattr(node, "close", None)
        if close is not None:
            close()
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown()
    return int(getattr(node, "exit_code", 0))
