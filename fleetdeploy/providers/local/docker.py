"""A small typed wrapper around the docker CLI (subprocess), for the local provider.

The CLI rather than an SDK: nothing extra to install, and the engine's own error texts reach the user.
Secrets never go through here as arguments: `exec_script` passes data on stdin.
"""

from __future__ import annotations

import datetime
import json
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fleetdeploy.errors import FleetError, InputError
from fleetdeploy.jsondoc import JSONMapping, as_list, as_object

# Short bounds so a wedged engine surfaces as an error instead of a hang.
QUICK_TIMEOUT = 30.0
RUN_TIMEOUT = 120.0


class DockerError(FleetError):
    """A docker command failed; the message is the engine's last error line.

    A FleetError, so one that escapes a provider call (e.g. while listing nodes) still ends as one line, exit 1.
    """


@dataclass(frozen=True)
class Container:
    """What the provider needs to know about one container (from `docker inspect`)."""

    id: str
    name: str
    running: bool
    status: str
    labels: Mapping[str, str] = field(default_factory=dict)
    ports: Mapping[str, int] = field(default_factory=dict)  # "22/tcp" -> published host port
    created: str = ""


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


class DockerCli:
    """Runs the docker CLI found on PATH at construction time."""

    def __init__(self, executable: str | None = None) -> None:
        found = executable or shutil.which("docker")
        if not found:
            raise InputError("docker CLI not found on PATH: install Docker (e.g. apt-get install docker.io)")
        self.executable = found

    def run(
        self,
        args: Sequence[str],
        *,
        stdin: str | None = None,
        timeout: float = QUICK_TIMEOUT,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        argv = [self.executable, *args]
        try:
            proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise DockerError(f"docker {args[0]} timed out after {int(timeout)} s") from exc
        except OSError as exc:
            raise DockerError(f"cannot run docker: {exc}") from exc
        if check and proc.returncode != 0:
            detail = _last_line(proc.stderr) or _last_line(proc.stdout) or f"exit code {proc.returncode}"
            raise DockerError(f"docker {args[0]}: {detail}")
        return proc

    def check_engine(self) -> str:
        """Returns the engine version; InputError (one line) when the engine can't be used."""
        try:
            proc = self.run(["version", "--format", "{{.Server.Version}}"], check=False, timeout=20)
        except DockerError as exc:
            raise InputError(f"Docker engine does not answer: {exc}") from exc
        err = _last_line(proc.stderr)
        if proc.returncode == 0 and proc.stdout.strip():
            return proc.stdout.strip()
        if "permission denied" in err.lower():
            raise InputError(
                "permission denied on the Docker socket: run as root or add your user to the 'docker' group"
            )
        raise InputError(f"Docker engine not reachable (is dockerd running?): {err or 'no answer'}")

    def image_exists(self, image: str) -> bool:
        return self.run(["image", "inspect", "--format", "{{.Id}}", image], check=False).returncode == 0

    def network_labels(self, name: str) -> dict[str, str] | None:
        """The network's labels, or None when there is no such network."""
        proc = self.run(["network", "inspect", "--format", "{{json .Labels}}", name], check=False)
        if proc.returncode != 0:
            return None
        return json.loads(proc.stdout.strip() or "null") or {}

    def network_create(self, name: str, labels: Mapping[str, str]) -> None:
        args = ["network", "create"]
        for key, value in labels.items():
            args += ["--label", f"{key}={value}"]
        self.run([*args, name])

    def network_remove(self, name: str) -> None:
        self.run(["network", "rm", name])

    def containers(self, labels: Mapping[str, str], *, running_only: bool = False) -> list[Container]:
        """Containers carrying every given label (exact values), running or not."""
        args = ["ps", "-q", "--no-trunc"] + ([] if running_only else ["-a"])
        for key, value in labels.items():
            args += ["--filter", f"label={key}={value}"]
        ids = self.run(args).stdout.split()
        return self.inspect(ids) if ids else []

    def inspect(self, ids: Sequence[str]) -> list[Container]:
        # A container can vanish between `ps` and `inspect`: docker then fails for that id only, and
        # still prints the others, so the output is used whatever the exit code.
        proc = self.run(["container", "inspect", *ids], check=False)
        try:
            records = json.loads(proc.stdout or "[]")
        except json.JSONDecodeError as exc:
            raise DockerError(f"docker inspect: unreadable output ({exc})") from exc
        return [_container(rec) for rec in records]

    def container(self, name: str) -> Container | None:
        found = self.inspect([name])
        return found[0] if found else None

    def run_container(self, args: Sequence[str]) -> str:
        """`docker run -d ARGS`; returns the container id."""
        return self.run(["run", "-d", *args], timeout=RUN_TIMEOUT).stdout.strip()

    def remove(self, names: Sequence[str]) -> None:
        """Force-removes containers with their anonymous volumes; missing ones are not an error."""
        if not names:
            return
        proc = self.run(["rm", "-f", "-v", *names], check=False, timeout=RUN_TIMEOUT)
        err = proc.stderr.lower()
        if proc.returncode != 0 and "no such container" not in err:
            raise DockerError(f"docker rm: {_last_line(proc.stderr)}")

    def exec_script(self, name: str, script: str, stdin: str = "", timeout: float = RUN_TIMEOUT,
                    args: Sequence[str] = ()) -> str:
        """Runs a fixed shell script as root in the container; data comes on stdin or as positional args ($1...).

        Never pass a secret in `args`: they are visible in the container's process list.
        """
        return self.run(["exec", "-i", name, "sh", "-c", script, "bootstrap", *args], stdin=stdin,
                        timeout=timeout).stdout

    def load(self, archive: Path) -> None:
        self.run(["load", "-i", str(archive)], timeout=600)

    def pull(self, image: str, timeout: float) -> None:
        self.run(["pull", image], timeout=timeout)


def created_at(text: str) -> float | None:
    """Epoch seconds of Docker's `Created` (RFC 3339 with nanoseconds, e.g. 2026-12-06T15:08:19.123456789Z)."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text.strip())
    if match is None:
        return None
    whole, fraction, zone = match.groups()
    stamp = datetime.datetime.fromisoformat(whole + ("+00:00" if zone == "Z" else zone))
    return stamp.timestamp() + float(f"0.{fraction}" if fraction else 0)


def _container(rec: JSONMapping) -> Container:
    """A container from its `docker inspect` record."""
    state = as_object(rec.get("State"))
    config = as_object(rec.get("Config"))
    ports: dict[str, int] = {}
    for port, bindings in as_object(as_object(rec.get("NetworkSettings")).get("Ports")).items():
        for binding in map(as_object, as_list(bindings)):
            host_port = binding.get("HostPort")
            if isinstance(host_port, str | int) and host_port and binding.get("HostIp") in ("127.0.0.1", "", "0.0.0.0"):
                ports[port] = int(host_port)
                break
    return Container(
        id=str(rec.get("Id", "")),
        name=str(rec.get("Name", "")).lstrip("/"),
        running=bool(state.get("Running")),
        status=str(state.get("Status", "")),
        labels={str(key): str(value) for key, value in as_object(config.get("Labels")).items()},
        ports=ports,
        created=str(rec.get("Created", "")),
    )
