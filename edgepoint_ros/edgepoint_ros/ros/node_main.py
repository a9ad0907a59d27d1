"""The `main()` every node executable shares: init, build, spin, shut down cleanly.

* A node that cannot start (bad parameter, missing weights or video) logs one
  FATAL line naming the problem and the process exits with status 1, so a
  launcher or the demo can tell "died at start-up" from "stopped". It exits
  without the interpreter's teardown (`_exit_after_failed_start`): the node
  whose constructor raised is half built and cannot be destroyed, and once, on
  a loaded machine, the process then hung after its FATAL line for more than
  30 s.
* SIGINT and SIGTERM stop the node and the process exits with status 0
  (`ShutdownSignals`). rclpy's own signal handlers are not installed: they
  shut the context down inside the signal handler, while the worker thread
  may still be publishing ("publisher's context is invalid") and the
  executor waiting ("failed to initialize wait set"), and raise
  KeyboardInterrupt wherever the main thread happens to be, e.g. in the
  middle of `close()` when a terminal's Ctrl-C arrives twice (once from the
  terminal, once forwarded by `ros2 launch`). Here the first signal only sets
  a flag that ends the spin (within SPIN_PERIOD_S); every later one is
  ignored (SIG_IGN, so it stays ignored through the interpreter's teardown).
  Then the node closes in order: `close()` stops its worker threads and
  returns a summary of what the node did, including the frames still in
  flight (never logged as errors), which is logged as the closing line
  ``closed (SIGINT): ...``; then the executor, the node and the context.
* A signal during start-up (building a model can take seconds) abandons the
  start: "interrupted during start-up", status 0.
* A node may finish on its own (the player after `max_frames`) by setting
  `finished = True`; the closing line then says ``closed (finished): ...``.
"""
from __future__ import annotations

import logging
import os
import sys
import threading

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions

from ..shutdown import ShutdownSignals

SPIN_PERIOD_S = 0.1  # longest time between a signal and the start of the close path


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


class _RuntimeLogToRos(logging.Handler):
    """The package's Python `logging` records (e.g. "making int8 model ...")
    in the node's ROS log, once, with the node's name.

    The fallback warning of `runtimes.selection` is left out: the same text
    reaches the node as a RuntimeFallbackWarning, which the node logs as a
    ROS WARN itself (it was printed twice, plain and as WARN)."""

    def __init__(self, logger):
        super().__init__(logging.INFO)
        self._logger = logger

    def emit(self, record) -> None:
        if record.name.endswith("runtimes.selection") and record.levelno == logging.WARNING:
            return
        try:
            text = record.getMessage()
            if record.levelno >= logging.ERROR:
                self._logger.error(text)
            elif record.levelno >= logging.WARNING:
                self._logger.warning(text)
            else:
                self._logger.info(text)
        except Exception:
            self.handleError(record)


def _route_package_logging(logger) -> None:
    package = logging.getLogger(__name__.split(".")[0])
    package.addHandler(_RuntimeLogToRos(logger))
    package.setLevel(logging.INFO)
    package.propagate = False


def run(node_class, args=None) -> int:
    signals = ShutdownSignals(starting=True)
    name = getattr(node_class, "DEFAULT_NAME", node_class.__name__)
    try:
        rclpy.init(args=args if args is not None else sys.argv,
                   signal_handler_options=SignalHandlerOptions.NO)
        logger = rclpy.logging.get_logger(name)
        _route_package_logging(logger)
        try:
            node = node_class()
        except Exception as exc:  # every start-up problem ends here with its message
            signals.closing()
            logger.fatal(f"cannot start: {exc}")
            _exit_after_failed_start(1)
        signals.starting = False
        if signals.received is not None:  # the signal came as the constructor returned
            raise KeyboardInterrupt(signals.received)
    except KeyboardInterrupt:
        rclpy.logging.get_logger(name).info(
            f"interrupted during start-up ({signals.received or 'KeyboardInterrupt'}); "
            "nothing was running")
        _exit_after_failed_start(0)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    reason = "context shut down"
    try:
        while rclpy.ok() and signals.received is None and not getattr(node, "finished", False):
            executor.spin_once(timeout_sec=SPIN_PERIOD_S)
    except ExternalShutdownException:
        pass
    signals.closing()
    if signals.received is not None:
        reason = signals.received
    elif getattr(node, "finished", False):
        reason = "finished"
    logger = node.get_logger()
    logger.info(f"{reason}: shutting down")
    try:
        close = getattr(node, "close", None)
        summary = close() if close is not None else None
        logger.info(f"closed ({reason})" + (f": {summary}" if summary else ""))
    finally:
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown()
    return int(getattr(node, "exit_code", 0))
