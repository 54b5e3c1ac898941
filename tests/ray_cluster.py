"""A throwaway one-machine Ray cluster on the loopback address, for tests and benchmarks.

``ray start --head --block`` in a process group of its own, with a temporary folder of its own
(so it never touches another Ray instance of the machine), listening on 127.0.0.1 only. Ray
binds its servers to loopback only when it sees the node's address as 127.0.0.1, which it does
with ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (its single-machine mode); the same variable must be
set for the drivers that connect. ``stop`` ends every process of the cluster, workers included.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: Environment for the cluster and for every driver that connects to it.
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
                "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
                "RAY_USAGE_STATS_ENABLED": "0"}


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that are free now (all probes held open together, so
    the system cannot hand the same port out twice)."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def free_port() -> int:
    return free_ports(1)[0]


def ray_executable() -> str:
    """The ``ray`` command of this Python's environment."""
    return str(Path(sys.executable).with_name("ray"))


class LocalRayCluster:
    """A Ray head node with ``cpus`` CPUs on 127.0.0.1; a context manager.

    Args:
        cpus: CPUs the head offers to tasks (each mask shard takes one).
        env: Extra environment of the cluster's processes (``PYTHONPATH`` for the workers).
        timeout: Seconds to wait for the head to accept drivers.
    """

    def __init__(self, cpus: int, env: dict[str, str] | None = None, timeout: float = 90.0):
        self.cpus = cpus
        # The head's port and the three servers Ray would otherwise put on random ports that
        # can collide with each other: chosen together so that all four differ.
        self.port, self.client_port, self.dashboard_port, self.agent_port = free_ports(4)
        self.address = f"127.0.0.1:{self.port}"
        self.temp_dir = tempfile.mkdtemp(prefix="maskmtl-ray-")
        self.env = {**os.environ, **LOOPBACK_ENV, **(env or {})}
        self.timeout = timeout
        self.process: subprocess.Popen | None = None

    def start(self) -> "LocalRayCluster":
        command = [ray_executable(), "start", "--head", "--block", f"--num-cpus={self.cpus}",
                   "--num-gpus=0", "--node-ip-address=127.0.0.1", f"--port={self.port}",
                   f"--ray-client-server-port={self.client_port}", "--include-dashboard=false",
                   f"--dashboard-port={self.dashboard_port}",
                   f"--dashboard-agent-listen-port={self.agent_port}",
                   f"--temp-dir={self.temp_dir}", "--disable-usage-stats"]
        self.log = open(Path(self.temp_dir) / "ray_start.log", "wb")
        self.process = subprocess.Popen(command, env=self.env, stdout=self.log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + self.timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"ray start exited with {self.process.returncode}: "
                                   f"{self.log_text()[-2000:]}")
            status = subprocess.run([ray_executable(), "status", f"--address={self.address}"],
                                    env=self.env, capture_output=True, text=True)
            if status.returncode == 0 and "CPU" in status.stdout:
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the Ray head did not start in {self.timeout:.0f} s")
            time.sleep(1.0)

    def log_text(self) -> str:
        return (Path(self.temp_dir) / "ray_start.log").read_text(errors="replace")

    def processes(self) -> list[tuple[int, str]]:
        """(pid, command line) of every live process the head started, workers included
        (descendants of ``ray start``; workers show their task as ``ray::NAME``)."""
        if self.process is None:
            return []
        parents, commands = {}, {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as handle:
                    stat = handle.read().decode(errors="replace")
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    command = handle.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
            commands[int(entry)] = command.strip()
        found, frontier = [], {self.process.pid}
        while frontier:
            children = {pid for pid, parent in parents.items() if parent in frontier}
            found += [(pid, commands[pid]) for pid in children]
            frontier = children
        return found

    def workers(self, task: str) -> list[int]:
        """Pids of this cluster's worker processes now running Ray task ``task``."""
        return [pid for pid, command in self.processes() if command.startswith(f"ray::{task}")]

    def stop(self) -> None:
        """End the head and every process it started (workers too)."""
        if self.process is None:
            return
        started = {pid for pid, _ in self.processes()}
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        for pid in [self.process.pid, *started]:  # workers run in process groups of their own
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait()
        self.log.close()
        self.process = None
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> "LocalRayCluster":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
