"""The shared local fleet of the E2E suite: a handle on it (CLI runs, its containers) and a secret watcher."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
ARCHIVES = REPO / ".cache" / "images"
STAMP = "/var/lib/fleetdeploy/converged.json"


@dataclass
class Fleet:
    name: str
    fleet_file: Path
    token: str
    env: dict[str, str]
    watcher: CommandLineWatcher
    api_key: str = ""
    aws_keys: list[str] = field(default_factory=list)  # key id and secret now in use
    outputs: list[str] = field(default_factory=list)
    retired_tokens: list[str] = field(default_factory=list)  # rotated out: no node may keep one
    retired_aws_keys: list[str] = field(default_factory=list)

    @property
    def secrets(self) -> list[str]:
        return [self.token, self.api_key, *self.aws_keys, *self.retired_tokens, *self.retired_aws_keys]

    def set_sensor(self, image: str, archive: Path) -> None:
        """Point the fleet file at another sensor image (and the archive it is loaded from)."""
        text = self.fleet_file.read_text()
        text = re.sub(r"(?m)^(  image: )localhost/sensor-double:\S+$", rf"\g<1>{image}", text)
        text = re.sub(r"(?m)^(  sensor_archive: )\S+$", rf"\g<1>{archive}", text)
        self.fleet_file.write_text(text)

    @property
    def inventory(self) -> Path:
        return REPO / "inventory" / f"{self.name}.yml"

    def deploy(self, *args: str, timeout: int = 1500) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, str(REPO / "deploy.py"), "-f", str(self.fleet_file), *args],
                                cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout)
        self.outputs.append(result.stdout + result.stderr)
        return result

    def json(self, *args: str, expect: int | None = 0) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
        """Run a command with `--output json`; stdout must be exactly one JSON document."""
        result = self.deploy(*args, "--output", "json")
        if expect is not None:
            assert result.returncode == expect, result.stdout[-6000:] + result.stderr[-3000:]
        return result, json.loads(result.stdout)

    def containers(self) -> dict[str, str]:
        """instance id → container name, for this fleet's node containers."""
        out = docker_out("ps", "-a", "--filter", f"label=fleetdeploy.fleet={self.name}",
                      "--format", '{{.Names}} {{.Label "fleetdeploy.instance-id"}}')
        pairs = (line.split() for line in out.splitlines() if line.strip())
        return {parts[1]: parts[0] for parts in pairs if len(parts) == 2 and parts[1]}

    def host(self, instance_id: str) -> str:
        return f"{self.name}-{instance_id}"


def volumes() -> set[str]:
    return set(docker_out("volume", "ls", "-q").split())


def proc_cmdlines(container: str) -> str:
    return docker_out("exec", container, "sh", "-c", "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '")


def docker_out(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True, timeout=300).stdout


def by_key(entries: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {entry[key]: entry for entry in entries}


class CommandLineWatcher:
    """Samples every process command line on this machine while the fleet is worked on."""

    def __init__(self, *secrets: str) -> None:
        self.secrets = [secret.encode() for secret in secrets]
        self.hits: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            for proc in Path("/proc").iterdir():
                if not proc.name.isdigit():
                    continue
                try:
                    cmdline = (proc / "cmdline").read_bytes()
                except OSError:
                    continue
                if any(secret in cmdline for secret in self.secrets):
                    self.hits.append(cmdline.replace(b"\0", b" ").decode(errors="replace")[:200])

    def watch(self, secret: str) -> None:
        self.secrets = [*self.secrets, secret.encode()]

    def __enter__(self) -> CommandLineWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def write_aws_credentials(path: Path, key_id: str, secret: str) -> None:
    path.write_text(f"[default]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n")
    path.chmod(0o600)


def build_variant(base: str, tag: str, dockerfile_tail: str, archive: Path) -> str:
    """A locally built variant of a stand-in image (FROM the local one: nothing pulled), saved for the nodes."""
    image = f"{base.rsplit(':', 1)[0]}:{tag}"
    subprocess.run(["docker", "build", "-q", "-t", image, "-"], input=f"FROM {base}\n{dockerfile_tail}\n",
                   text=True, capture_output=True, check=True, timeout=600)
    subprocess.run(["docker", "save", "-o", str(archive), image], capture_output=True, check=True, timeout=600)
    return image
