"""Start the node executables as real processes, the way `ros2 launch` would.

`ros2 launch` is not installable from PyPI, so the demo and the tests start
the same console scripts (`<prefix>/lib/edgepoint_ros/<name>`) with the same
`config/*.yaml` parameter files the launch files use. `NodeProcess` runs one
node with its output in a log file, and always ends it: SIGINT first (the
node shuts down cleanly), SIGKILL if it does not exit in time. `kill()` ends
it at once with SIGKILL, as a crash would (fault tests); `resident_memory_bytes`
and `cpu_seconds` read /proc (soak test).

The environment (`ros_environment`) keeps DDS traffic on this machine (the
Fast DDS loopback profile, ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST), in the
caller's ROS_DOMAIN_ID, and makes log lines reach the log file immediately.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

PACKAGE = "edgepoint_ros"


def _not_built(what: str) -> FileNotFoundError:
    return FileNotFoundError(f"{what} not found: the workspace is not built or not sourced; "
                             "run `bash scripts/setup.sh --no-demo` then `source scripts/env.sh`")


def package_prefix() -> Path:
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix
    try:
        return Path(get_package_prefix(PACKAGE))
    except PackageNotFoundError:
        raise _not_built(f"ROS package {PACKAGE}") from None


def executable_path(name: str) -> Path:
    path = package_prefix() / "lib" / PACKAGE / name
    if not path.is_file():
        raise _not_built(f"executable {path}")
    return path


def config_path(file_name: str) -> Path:
    """A file of the installed `config/` directory (same content as the source tree's)."""
    path = package_prefix() / "share" / PACKAGE / "config" / file_name
    if not path.is_file():
        raise _not_built(f"parameter file {path}")
    return path


def random_domain_id() -> int:
    # 1..100: inside the range every DDS port mapping allows; 0 is everyone's default.
    return random.SystemRandom().randint(1, 100)


def ros_environment(domain_id: int, log_dir: Path, base: dict | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env["ROS_DOMAIN_ID"] = str(domain_id)
    env["ROS_LOG_DIR"] = str(log_dir)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    if "FASTDDS_DEFAULT_PROFILES_FILE" not in env:
        profile = package_prefix() / "share" / PACKAGE / "config" / "fastdds_loopback.xml"
        if profile.is_file():
            env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(profile)
    env["RCUTILS_LOGGING_BUFFERED_STREAM"] = "0"
    env["RCUTILS_COLORIZED_OUTPUT"] = "0"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def write_parameter_file(path: Path, parameters: dict) -> Path:
    """A ROS 2 parameter YAML applying `parameters` to every node."""
    import yaml
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": dict(parameters)}},
                                   default_flow_style=False))
    return path


class NodeProcess:
    """One node executable running in its own process (and process group)."""

    def __init__(self, executable: str, *, name: str | None = None, namespace: str = "",
                 params_files: list[Path] = (), parameters: dict | None = None,
                 remappings: dict[str, str] | None = None, env: dict[str, str],
                 log_dir: Path):
        self.executable = executable
        self.name = name or executable
        log_dir = Path(log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        tag = f"{namespace.strip('/').replace('/', '_') + '_' if namespace else ''}{self.name}"
        self.log_path = log_dir / f"{tag}.log"
        command = [str(executable_path(executable)), "--ros-args", "-r", f"__node:={self.name}"]
        if namespace:
            command += ["-r", f"__ns:={namespace}"]
        for params_file in params_files:
            command += ["--params-file", str(params_file)]
        if parameters:
            override = write_parameter_file(log_dir / f"{tag}.params.yaml", parameters)
            command += ["--params-file", str(override)]
        for source, target in (remappings or {}).items():
            command += ["-r", f"{source}:={target}"]
        self.command = command
        self._log_file = open(self.log_path, "w")
        self.process = subprocess.Popen(command, stdout=self._log_file, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=env,
                                        start_new_session=True)
        self.pid = self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def alive(self) -> bool:
        return self.process.poll() is None

    def exit_description(self) -> str:
        """'is running', 'exited with status N' or 'was killed by SIGKILL'."""
        code = self.process.poll()
        if code is None:
            return "is running"
        if code < 0:
            try:
                return f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"was killed by signal {-code}"
        return f"exited with status {code}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def wait_for_log(self, text: str, timeout: float) -> bool:
        """True once `text` appears in the output; False on timeout or exit."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return True
            if not self.alive():
                return text in self.log()
            self.wait(0.05)  # the log is re-read every 50 ms; an exit ends the wait at once
        return False

    def wait(self, timeout: float) -> int | None:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def resident_memory_bytes(self) -> int | None:
        """Resident set size (VmRSS in /proc/<pid>/status); None once it has exited."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024  # the kernel reports kB
        except (FileNotFoundError, ProcessLookupError):
            pass
        return None

    def cpu_seconds(self) -> float | None:
        """User + system CPU time so far (/proc/<pid>/stat); None once it has exited."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            return None
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def kill(self) -> int:
        """SIGKILL now (no clean shutdown, like a crash); returns the exit status."""
        if self.alive():
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return self.stop()

    def send_signal(self, number: int = signal.SIGINT) -> None:
        """Send `number` to the node's process group (no-op once it exited)."""
        if self.alive():
            try:
                os.killpg(self.pid, number)
            except ProcessLookupError:
                pass

    def stop(self, timeout: float = 5.0) -> int:
        """SIGINT, then SIGKILL after `timeout` seconds; returns the exit status."""
        if self.alive():
            self.send_signal(signal.SIGINT)
            if self.wait(timeout) is None:
                try:
                    os.killpg(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.process.wait()
        self._log_file.close()
        return self.process.returncode

    def __repr__(self) -> str:
        return f"<NodeProcess {self.name} pid {self.pid} {self.exit_description()}, " \
               f"log {self.log_path}>"


def stop_all(processes, timeout: float = 5.0) -> dict[str, int]:
    """Stop several nodes at once: SIGINT to each, then each gets up to
    `timeout` seconds (together, not one after the other) before SIGKILL.
    Returns each node's exit status by name."""
    processes = list(processes)
    for process in processes:
        process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + timeout
    for process in processes:
        process.wait(max(0.0, deadline - time.monotonic()))
    return {process.name: process.stop(0.0) for process in processes}
