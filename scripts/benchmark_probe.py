"""What scripts/benchmark.py measures around one command: wall time, controller CPU and peak RSS, node CPU.

Controller CPU is the user + sys time of the command and every descendant it waited for (ansible-playbook, its
forks, ssh, docker CLI): RUSAGE_CHILDREN of this process, before and after. Peak RSS is the largest sum of the
resident sets of the command's whole process tree and of the SSH ControlPersist masters it started (they detach
from the tree), sampled every 0.2 s (shared pages count once per process: an upper bound). Node CPU is the
node containers' cgroup CPU (cpuacct, which includes the containers nested in them), before and after.
"""

from __future__ import annotations

import resource
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

CGROUP_ROOTS = (Path("/sys/fs/cgroup/cpuacct/docker"), Path("/sys/fs/cgroup/system.slice"))


@dataclass
class Measured:
    wall_s: float
    controller_cpu_s: float
    node_cpu_s: float
    controller_peak_rss_mb: float
    returncode: int
    stdout: str
    stderr: str


def _container_cpu_ns(container_id: str) -> int:
    """Cumulative CPU of one container (cgroup v1 cpuacct, or v2 cpu.stat), in nanoseconds."""
    v1 = CGROUP_ROOTS[0] / container_id / "cpuacct.usage"
    if v1.is_file():
        return int(v1.read_text())
    v2 = CGROUP_ROOTS[1] / f"docker-{container_id}.scope" / "cpu.stat"
    for line in v2.read_text().splitlines():
        key, value = line.split()
        if key == "usage_usec":
            return int(value) * 1000
    raise RuntimeError(f"no CPU accounting found for container {container_id}")


def node_containers(fleet_name: str) -> list[str]:
    out = subprocess.run(["docker", "ps", "-q", "--no-trunc", "--filter", f"label=fleetdeploy.fleet={fleet_name}",
                          "--filter", "label=fleetdeploy.role=node"],
                         capture_output=True, text=True, check=True).stdout
    return out.split()


def _nodes_cpu_ns(ids: list[str]) -> int:
    total = 0
    for container_id in ids:
        try:
            total += _container_cpu_ns(container_id)
        except (OSError, RuntimeError):
            pass  # a node removed meanwhile (resize, down) no longer counts
    return total


def _ssh_masters_since(started: float) -> list[psutil.Process]:
    """SSH ControlPersist masters started by this command: detached from its tree, yet its memory."""
    masters = []
    for process in psutil.process_iter(["name", "cmdline", "create_time"]):
        info = process.info
        if info["name"] == "ssh" and info["create_time"] >= started and "[mux]" in " ".join(info["cmdline"] or []):
            masters.append(process)
    return masters


class _RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.started = time.time() - 1
        self.peak = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                root = psutil.Process(self.pid)
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:
                return
            total = 0
            for process in tree + _ssh_masters_since(self.started):
                try:
                    total += process.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self.done.wait(0.2)


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(argv: list[str], env: dict[str, str], cwd: Path, fleet_name: str) -> Measured:
    ids = node_containers(fleet_name)
    nodes_before = _nodes_cpu_ns(ids)
    cpu_before = _children_cpu_s()
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = _RssSampler(proc.pid)
    sampler.start()
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - started
    sampler.done.set()
    sampler.join()
    return Measured(
        wall_s=round(wall, 2),
        controller_cpu_s=round(_children_cpu_s() - cpu_before, 2),
        node_cpu_s=round((_nodes_cpu_ns(ids) - nodes_before) / 1e9, 2),
        controller_peak_rss_mb=round(sampler.peak / 2**20, 1),
        returncode=proc.returncode,
        stdout=stdout,
        stderr=stderr,
    )
