"""The local fleet's Bacalhau orchestrator: one container on the fleet network, for `orchestrator.endpoint: local`.

The token (and the API key, when the fleet names one) reach it only through a 0600 config file bind-mounted
read-only: never argv or env, which `docker inspect` and `ps` show to anyone on this machine. Its HTTP API is
published on 127.0.0.1 only, so `orchestrator.api: local` lets the controller read the orchestrator's view.
"""

from __future__ import annotations

import threading
import time
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from fleetdeploy.fleet.files import read_token
from fleetdeploy.jsondoc import JSONObject
from fleetdeploy.orchestrator.api import OrchestratorApi
from fleetdeploy.private_files import write_private
from fleetdeploy.providers.base import ClusterOutcome, Outcome, ProgressCallback
from fleetdeploy.providers.local.docker import Container, DockerCli, DockerError

if TYPE_CHECKING:
    from fleetdeploy.fleet.model import Fleet

API_PORT = "1234/tcp"
# Bacalhau's default is 1m; a local fleet is watched by tests and people at a terminal, so a dead node shows
# sooner. Still three compute heartbeats (15 s) long, so a busy machine does not drop live nodes.
DISCONNECT_TIMEOUT = "45s"
API_USER_ALIAS = "fleetdeploy"
# Bacalhau answers within a second or two of starting; the image may be a real one on a busy machine.
READY_TIMEOUT = 60.0
READY_PROBE_INTERVAL = 0.1
READY_PROBE_TIMEOUT = 1.0
READY_PROBES_PER_CHECK = 5  # the container's state (a `docker inspect`) is read every half second


class LocalOrchestrator:
    def __init__(self, fleet: Fleet, fleet_dir: Path, network: str, labels: dict[str, str]) -> None:
        self.fleet = fleet
        self.network = network
        self.labels = labels
        self.name = f"fleet-{fleet.name}-orchestrator"
        self.endpoint = f"nats://{self.name}:4222"
        self.config_file = fleet_dir / "orchestrator" / "config.yaml"

    def _token(self) -> str:
        return read_token(Path(self.fleet.orchestrator.token_file))

    def validate(self) -> None:
        """The token (and API key) must be readable before anything is created (the image is checked elsewhere)."""
        self._config()

    def _config(self) -> JSONObject:
        api: JSONObject = {"Host": "0.0.0.0", "Port": 1234}
        key_file = self.fleet.orchestrator.api_token_file
        if key_file is not None:
            # With Users configured, Bacalhau's API wants `Authorization: Bearer <APIKey>` (facts.md: Bacalhau API).
            key = read_token(Path(key_file), "orchestrator API key")
            # read:node for the node list; read:job and write:job for `canary` (submit a job, read its results).
            api["Auth"] = {"Users": [{"Alias": API_USER_ALIAS, "APIKey": key,
                                      "Capabilities": [{"Actions": ["read:node", "read:job", "write:job"]}]}]}
        return {
            "Orchestrator": {"Enabled": True, "Host": "0.0.0.0", "Port": 4222, "Auth": {"Token": self._token()},
                             "NodeManager": {"DisconnectTimeout": DISCONNECT_TIMEOUT}},
            "Compute": {"Enabled": False},
            "API": api,
        }

    def _write_config(self) -> bool:
        """Writes the config (0600) when its content changed; returns whether it did."""
        text = yaml.safe_dump(self._config(), sort_keys=False)
        self.config_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.config_file.exists() and self.config_file.read_text(encoding="utf-8") == text:
            return False
        write_private(self.config_file, text)
        return True

    def api_url(self, docker: DockerCli, current: Container | None = None) -> str | None:
        """`http://127.0.0.1:<port>` of the running orchestrator's API, or None."""
        current = current or docker.container(self.name)
        if current is None or not current.running or API_PORT not in current.ports:
            return None
        return f"http://127.0.0.1:{current.ports[API_PORT]}"

    def ensure(self, docker: DockerCli, progress: ProgressCallback, stop: threading.Event) -> ClusterOutcome:
        image = self.fleet.bacalhau.image
        try:
            changed = self._write_config()
            current = docker.container(self.name)
            if (current and current.running and not changed and current.labels.get("fleetdeploy.image") == image
                    and API_PORT in current.ports):
                progress(self.name, "running")
                return ClusterOutcome(self.name, "local", Outcome.UNCHANGED)
            if current:
                progress(self.name, "replacing (stopped, or config/image changed)")
                docker.remove([current.name])
            progress(self.name, f"starting {image}")
            args = ["--name", self.name, "--hostname", self.name, "--network", self.network,
                    "--restart", "unless-stopped", "-p", f"127.0.0.1::{API_PORT}",
                    "-v", f"{self.config_file}:/etc/bacalhau/config.yaml:ro"]
            for key, value in (self.labels | {"fleetdeploy.image": image}).items():
                args += ["--label", f"{key}={value}"]
            docker.run_container([*args, image, "serve", "--config", "/etc/bacalhau/config.yaml"])
            self._wait_ready(docker, stop)
        except DockerError as exc:
            progress(self.name, f"failed: {exc}")
            return ClusterOutcome(self.name, "local", Outcome.FAILED, str(exc))
        return ClusterOutcome(self.name, "local", Outcome.RELAUNCHED if current else Outcome.LAUNCHED)

    def _wait_ready(self, docker: DockerCli, stop: threading.Event) -> None:
        """Until the API answers: the nodes configured next connect at once. A bad config makes the process exit
        (and Docker restart it) straight away: caught here, not in configure. `stop` (Ctrl-C) ends the wait."""
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            current = docker.container(self.name)
            if current is None or not current.running or current.status == "restarting":
                raise DockerError(f"{self.name} exited right after start (see `docker logs {self.name}`)")
            url = self.api_url(docker, current)
            api = OrchestratorApi(url, timeout_s=READY_PROBE_TIMEOUT) if url else None
            for _ in range(READY_PROBES_PER_CHECK):
                if api and api.alive():
                    return
                if stop.is_set():
                    raise DockerError("interrupted")
                if time.monotonic() > deadline:
                    raise DockerError(f"{self.name}'s API did not answer within {READY_TIMEOUT:.0f} s "
                                      f"(see `docker logs {self.name}`)")
                time.sleep(READY_PROBE_INTERVAL)

    def remove(self, docker: DockerCli, progress: ProgressCallback, include_absent: bool) -> list[ClusterOutcome]:
        current = docker.containers(self.labels)
        with suppress(FileNotFoundError):
            self.config_file.unlink()  # a copy of the token: it goes with the orchestrator
        if not current and not include_absent:
            return []
        try:
            if current:
                progress(self.name, "removing")
                docker.remove([c.name for c in current])
        except DockerError as exc:
            return [ClusterOutcome(self.name, "local", Outcome.FAILED, str(exc))]
        return [ClusterOutcome(self.name, "local", Outcome.REMOVED if current else Outcome.UNCHANGED)]
