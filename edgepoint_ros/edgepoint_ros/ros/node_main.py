"""The `main()` every node executable shares: init, build, spin, shut down cleanly.

* A node that cannot start (bad parameter, missing weights or video) logs one
  FATAL line naming the problem and the process exits with status 1, so a
  launcher or the demo can tell "died at start-up" from "stopped".
* SIGINT/SIGTERM (rclpy's signal handlers) end the spin; the node's `close()`
  stops its worker threads before the context shuts down; exit status 0.
* A node may finish on its own (the player after `max_frames`) by setting
  `finished = True`.
"""
from __future__ import annotations

import sys

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor


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
        rclpy.try_shutdown()
        return 1
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
