"""Local provider: fleet nodes are systemd containers on this machine's Docker engine.

One cluster per region, one container per node, all on the fleet's own Docker network. Every container carries
`fleetdeploy.*` labels; those labels (never names or list positions) decide what belongs to which fleet, so
`nodes()` and `down()` touch this fleet's containers and nothing else. A stopped container is treated like a
preempted spot VM: `up` removes it and creates a new instance with a new id.
"""

from __future__ import annotations

import functools
import os
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING

from fleetdeploy.errors import InputError
from fleetdeploy.fleet.orchestrator_spec import LOCAL
from fleetdeploy.jsondoc import JSONObject
from fleetdeploy.orchestrator.api import LOCAL_NOT_RUNNING
from fleetdeploy.providers.base import (
    ActionKind,
    ClusterAction,
    ClusterCost,
    ClusterOutcome,
    ClusterPlan,
    FailureKind,
    FleetCost,
    Node,
    Outcome,
    ProgressCallback,
    Provider,
    Survey,
)
from fleetdeploy.providers.local.docker import DockerCli, DockerError, created_at
from fleetdeploy.providers.local.image import ensure_node_image, ensure_service_images
from fleetdeploy.providers.local.orchestrator import LocalOrchestrator
from fleetdeploy.runs.ssh import NODE_USER, known_hosts_file, ssh_argv

if TYPE_CHECKING:
    from fleetdeploy.fleet.model import Fleet

LABEL_FLEET = "fleetdeploy.fleet"
LABEL_ROLE = "fleetdeploy.role"
LABEL_REGION = "fleetdeploy.region"
LABEL_CLUSTER = "fleetdeploy.cluster"
LABEL_INSTANCE = "fleetdeploy.instance-id"
LOCAL_COST_BASIS = "local nodes cost nothing"
SSH_PORT = "22/tcp"

# The host here lacks CAP_SYS_RESOURCE, so --privileged fails: grant every other capability instead (facts.md: Docker).
NODE_CAPABILITIES = (
    "AUDIT_CONTROL", "AUDIT_READ", "AUDIT_WRITE", "BLOCK_SUSPEND", "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH",
    "FOWNER", "FSETID", "IPC_LOCK", "IPC_OWNER", "KILL", "LEASE", "LINUX_IMMUTABLE", "MAC_ADMIN", "MAC_OVERRIDE",
    "MKNOD", "NET_ADMIN", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP",
    "SETUID", "SYS_ADMIN", "SYS_BOOT", "SYS_CHROOT", "SYS_MODULE", "SYS_NICE", "SYS_PACCT", "SYS_PTRACE",
    "SYS_RAWIO", "SYS_TIME", "SYS_TTY_CONFIG", "SYSLOG", "WAKE_ALARM",
)
UNPRIVILEGED_OPTIONS = (
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
)

# Runs as root inside a new node; $1 is the login user, the public key arrives on stdin. Like cloud-init on a VM:
# wait for boot, then create the login user with passwordless sudo and its authorized key.
BOOTSTRAP_SCRIPT = r"""set -eu
user=$1
key=$(cat)
i=0
# --wait blocks until boot ends, once systemd answers at all (it does not for the first moments of a boot).
while state=$(systemctl is-system-running --wait 2>/dev/null || true); [ "$state" != running ] && [ "$state" != degraded ]; do
  i=$((i + 1)); [ "$i" -le 600 ] || { echo "systemd did not finish booting (state: ${state:-none})" >&2; exit 1; }
  sleep 0.2
done
id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$user"
printf '%s ALL=(ALL) NOPASSWD:ALL\n' "$user" >"/etc/sudoers.d/90-fleet-$user"
chmod 0440 "/etc/sudoers.d/90-fleet-$user"
home=$(getent passwd "$user" | cut -d: -f6)
install -d -m 0700 -o "$user" -g "$user" "$home/.ssh"
printf '%s\n' "$key" >"$home/.ssh/authorized_keys"
chown "$user:$user" "$home/.ssh/authorized_keys"
chmod 0600 "$home/.ssh/authorized_keys"
systemctl is-active --quiet ssh || systemctl restart ssh
"""
SSH_READY_TRIES = 30
# Nodes of one region booted at once (each is a systemd container with its own Docker engine).
PARALLEL_CREATES = 4


class NodeCreateError(Exception):
    """Creating one node failed; its container has already been removed."""


class LocalProvider:
    def __init__(self, fleet: Fleet, state_dir: Path) -> None:
        self.fleet = fleet
        self.fleet_dir = Path(state_dir).expanduser().resolve() / fleet.name
        self.key_file = self.fleet_dir / "id_ed25519"
        self.network = f"fleet-{fleet.name}"
        self.orchestrator = LocalOrchestrator(fleet, self.fleet_dir, self.network, self._labels("orchestrator"))

    # ---- naming --------------------------------------------------------------------------------------------------
    def _labels(self, role: str, region: str | None = None) -> dict[str, str]:
        labels = {LABEL_FLEET: self.fleet.name, LABEL_ROLE: role}
        if region is not None:
            labels |= {LABEL_REGION: region, LABEL_CLUSTER: self.fleet.cluster_name(region)}
        return labels

    def _node_name(self, region: str, instance_id: str) -> str:
        return f"fleet-{self.fleet.name}-{region}-{instance_id}"

    @property
    def local_orchestrator(self) -> bool:
        return self.fleet.orchestrator.endpoint == "local"

    def orchestrator_endpoint(self) -> str:
        return self.orchestrator.endpoint

    def extra_inventory_vars(self) -> JSONObject:
        extra: JSONObject = {
            # dockerd 26 in a node container can't start nested containers without it (facts.md: Docker).
            "docker_daemon_environment": {"DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE": "1"},
            # There is no EC2 metadata service here, and tests must never send traffic to 169.254.169.254.
            "sensor_identity_imds_enabled": False,
            "health_check_imds_enabled": False,
            "bacalhau_environment": {"AWS_EC2_METADATA_DISABLED": "true"},
        }
        if self.local_orchestrator:
            extra["bacalhau_orchestrator_endpoint"] = self.orchestrator.endpoint
        if self.fleet.orchestrator.api == LOCAL:
            url = self.orchestrator_api_url()
            extra["fleet_orchestrator_api"] = url or ""
            if url is None:
                extra["fleet_orchestrator_api_unavailable"] = LOCAL_NOT_RUNNING
        return extra

    def prices(self) -> None:
        """Nothing is billed."""
        return None

    def costs(self, days: int) -> FleetCost:
        """Nothing is billed: each cluster's nodes as running now, since its oldest node was created."""
        docker = DockerCli()
        try:
            docker.check_engine()
            containers = docker.containers(self._labels("node"), running_only=True)
        except DockerError as exc:
            return FleetCost((), LOCAL_COST_BASIS, error=str(exc))
        now, clusters = time.time(), []
        for region in sorted(self.fleet.regions):
            created = sorted(t for c in containers if c.labels.get(LABEL_REGION) == region
                             and (t := created_at(c.created)) is not None)
            if created:
                started = max(created[0], now - days * 86400)
                clusters.append(ClusterCost(self.fleet.cluster_name(region), region, len(created), created[0],
                                            now - started, 0.0))
        return FleetCost(tuple(clusters), LOCAL_COST_BASIS)

    def orchestrator_api_url(self) -> str | None:
        """The local orchestrator's API as published on this machine's loopback (None when it is not running)."""
        with suppress(DockerError, InputError):
            return self.orchestrator.api_url(DockerCli())
        return None

    # ---- plan ----------------------------------------------------------------------------------------------------
    def _region_actions(self) -> dict[str, ClusterAction] | None:
        """What `up` will do per region, from the containers that exist now (None when Docker can't be asked)."""
        try:
            docker = DockerCli()
            docker.check_engine()
            existing = docker.containers(self._labels("node"))
        except (DockerError, InputError):
            return None
        actions = {}
        for region, spec in self.fleet.regions.items():
            mine = [c for c in existing if c.labels.get(LABEL_REGION) == region]
            running = sum(1 for c in mine if c.running)
            if not mine:
                actions[region] = ClusterAction(ActionKind.LAUNCH, spec.count)
            elif running != spec.count and running == len(mine):
                actions[region] = ClusterAction(ActionKind.RESIZE, spec.count, running)
            elif running != len(mine) or running < spec.count:
                actions[region] = ClusterAction(ActionKind.HEAL, spec.count, len(mine))
            else:
                actions[region] = ClusterAction(ActionKind.NOTHING, spec.count, running)
        return actions

    def plan(self) -> list[ClusterPlan]:
        image = self.fleet.local.node_image
        mode = "--privileged" if self.fleet.local.privileged else f"{len(NODE_CAPABILITIES)} capabilities"
        actions = self._region_actions()
        plans = []
        for region, spec in sorted(self.fleet.regions.items()):
            task = (
                f"{spec.count} x docker container {self._node_name(region, 'lc-<10 hex>')}\n"
                f"  image: {image} (systemd as PID 1, {mode}, anonymous /var/lib/docker volume)\n"
                f"  network: {self.network}; sshd on 127.0.0.1:<free port>; user {NODE_USER}, key {self.key_file}"
            )
            if self.local_orchestrator:
                task += f"\n  orchestrator: {self.orchestrator.name} ({self.fleet.bacalhau.image})"
            plans.append(ClusterPlan(self.fleet.cluster_name(region), region, None, spec.count, None, False, task,
                                     actions.get(region) if actions is not None else None))
        return plans

    # ---- up ------------------------------------------------------------------------------------------------------
    def preflight(self, launching: bool = False) -> None:
        """A Docker engine that answers and the ssh tools: without them no command can do anything."""
        DockerCli().check_engine()
        for tool in ("ssh", "ssh-keygen"):
            if shutil.which(tool) is None:
                raise InputError(f"'{tool}' not found on PATH (apt-get install openssh-client)")

    def _validate(self) -> tuple[DockerCli, str]:
        """Everything that can make `up` fail as a whole, checked before anything is created."""
        self.preflight()
        docker = DockerCli()
        labels = docker.network_labels(self.network)
        if labels is not None and labels.get(LABEL_FLEET) != self.fleet.name:
            raise InputError(f"Docker network {self.network} exists but does not belong to fleet {self.fleet.name}")
        ensure_node_image(self.fleet.local.node_image, docker)
        if self.local_orchestrator:
            self.orchestrator.validate()
        ensure_service_images(self.fleet, docker, need_orchestrator=self.local_orchestrator)
        return docker, self._ensure_key()

    def _ensure_key(self) -> str:
        """The fleet's SSH key: created once, reused by every later `up`; returns the public key."""
        self.fleet_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.key_file.exists():
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"fleetdeploy-{self.fleet.name}",
                 "-f", str(self.key_file)],
                check=True, capture_output=True, timeout=30,
            )
        os.chmod(self.key_file, 0o600)
        # The public half is derived from the private key: a lost .pub file is no reason to change keys.
        derived = subprocess.run(["ssh-keygen", "-y", "-f", str(self.key_file)],
                                 check=True, capture_output=True, text=True, timeout=30)
        return derived.stdout.strip()

    def survey(self) -> Survey:
        """The containers as they are now: a local fleet has nothing to refresh and no launch outlives `up`."""
        actions = self._region_actions()
        if actions is None:
            return Survey({}, [], error="cannot ask the Docker engine about the node containers")
        try:
            nodes = self.nodes()
        except (DockerError, InputError) as exc:
            return Survey({}, [], error=str(exc))
        return Survey({self.fleet.cluster_name(r): a for r, a in actions.items()}, nodes)

    def up(self, progress: ProgressCallback, only: Collection[str] | None = None) -> list[ClusterOutcome]:
        docker, public_key = self._validate()
        if docker.network_labels(self.network) is None:
            docker.network_create(self.network, {LABEL_FLEET: self.fleet.name})
        # Regions (and the local orchestrator) are independent: all start at once, as SkyPilot clusters would.
        stop = threading.Event()
        jobs: list[Callable[[], ClusterOutcome]] = []
        if self.local_orchestrator and only is None:
            jobs.append(functools.partial(self.orchestrator.ensure, docker, progress, stop))
        jobs += [functools.partial(self._up_region, docker, region, spec.count, public_key, progress, stop)
                 for region, spec in sorted(self.fleet.regions.items())
                 if only is None or self.fleet.cluster_name(region) in only]
        pool = ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="region")
        try:
            futures = [pool.submit(job) for job in jobs]
            return [future.result() for future in futures]
        finally:
            stop.set()  # on Ctrl-C: no region starts another node; those booting finish (or are removed)
            pool.shutdown(wait=True, cancel_futures=True)

    def _up_region(
        self, docker: DockerCli, region: str, count: int, public_key: str, progress: ProgressCallback,
        stop: threading.Event,
    ) -> ClusterOutcome:
        cluster = self.fleet.cluster_name(region)
        try:
            existing = docker.containers(self._labels("node", region))
            stopped = [c.name for c in existing if not c.running]
            running = sorted((c for c in existing if c.running), key=lambda c: (c.created, c.name))
            if stopped:
                progress(cluster, f"removing {len(stopped)} stopped node(s) (preempted)")
                docker.remove(stopped)
            if len(running) > count:
                # Shrink: whole nodes go, newest first; the survivors are not touched.
                extra = [c.name for c in running[count:]]
                progress(cluster, f"resizing {len(running)} -> {count}: removing {len(extra)} node(s)")
                docker.remove(extra)
                return ClusterOutcome(cluster, region, Outcome.RESIZED)
            missing = count - len(running)
            if missing == 0:
                progress(cluster, f"{len(running)} node(s) running")
                return ClusterOutcome(cluster, region, Outcome.RELAUNCHED if stopped else Outcome.UNCHANGED)
            image = self.fleet.local.image_of(region)
            if not docker.image_exists(image):
                # Never a pull: like an AMI that is not in the region, the region's image must exist already.
                raise NodeCreateError(f"node image {image} is not on this machine")
            progress(cluster, f"creating {missing} node(s)")
            self._create_nodes(docker, region, missing, public_key, lambda m: progress(cluster, m), stop)
        except (DockerError, NodeCreateError) as exc:
            progress(cluster, f"failed: {exc}")
            return ClusterOutcome(cluster, region, Outcome.FAILED, str(exc), FailureKind.UNKNOWN)
        grown = Outcome.RESIZED if existing and not stopped else Outcome.RELAUNCHED
        return ClusterOutcome(cluster, region, grown if existing else Outcome.LAUNCHED)

    def _run_args(self, name: str, region: str, instance_id: str) -> list[str]:
        args = ["--name", name, "--hostname", f"{self.fleet.name}-{instance_id}", "--network", self.network]
        for key, value in (self._labels("node", region) | {LABEL_INSTANCE: instance_id}).items():
            args += ["--label", f"{key}={value}"]
        if self.fleet.local.privileged:
            args.append("--privileged")
        else:
            args += [f"--cap-add={cap}" for cap in NODE_CAPABILITIES]
            args += list(UNPRIVILEGED_OPTIONS)
        args += ["--tmpfs", "/run", "--tmpfs", "/run/lock", "-v", "/var/lib/docker", "--stop-signal", "SIGRTMIN+3",
                 "-p", "127.0.0.1::22"]
        # systemd as PID 1, whatever CMD the image was built with.
        return [*args, self.fleet.local.image_of(region), "/lib/systemd/systemd"]

    def _create_nodes(self, docker: DockerCli, region: str, missing: int, public_key: str,
                      say: Callable[[str], None], stop: threading.Event) -> None:
        """Boot `missing` nodes, a few at once; every node that can be made is made, then the first error is raised."""

        def create() -> str | None:
            return None if stop.is_set() else self._create_node(docker, region, public_key, say)

        errors: list[Exception] = []
        ready = 0
        with ThreadPoolExecutor(max_workers=min(missing, PARALLEL_CREATES), thread_name_prefix="node") as pool:
            for future in as_completed([pool.submit(create) for _ in range(missing)]):
                try:
                    instance_id = future.result()
                except (DockerError, NodeCreateError) as exc:
                    errors.append(exc)
                    continue
                if instance_id is not None:
                    ready += 1
                    say(f"node {instance_id} ready ({ready}/{missing})")
        if errors:
            raise errors[0]
        if stop.is_set() and ready < missing:
            raise NodeCreateError("interrupted")

    def _create_node(self, docker: DockerCli, region: str, public_key: str, say: Callable[[str], None]) -> str:
        instance_id = f"lc-{secrets.token_hex(5)}"
        name = self._node_name(region, instance_id)
        try:
            docker.run_container(self._run_args(name, region, instance_id))
            container = docker.container(name)
            if container is None or not container.running:
                state = container.status if container else "gone"
                raise NodeCreateError(f"{name} stopped right after start ({state})")
            port = container.ports.get(SSH_PORT)
            if port is None:
                raise NodeCreateError(f"{name}: no published ssh port")
            say(f"{instance_id}: booting, installing the {NODE_USER} key")
            docker.exec_script(name, BOOTSTRAP_SCRIPT, stdin=public_key + "\n", timeout=180, args=[NODE_USER])
            say(f"{instance_id}: waiting for sshd on 127.0.0.1:{port}")
            self._wait_ssh(port, instance_id)
        except (DockerError, NodeCreateError, subprocess.SubprocessError) as exc:
            # A half-made node must not linger: it would be counted as running by the next `up`.
            with suppress(DockerError):
                docker.remove([name])
            raise NodeCreateError(str(exc)) from exc
        return instance_id

    def ssh_argv(self, port: int, instance_id: str, *command: str) -> list[str]:
        """Batch ssh to a node; its host key is pinned under its instance id at its first boot (trust on first use)."""
        return ssh_argv([str(self.key_file)], "127.0.0.1", port, *command, alias=instance_id,
                        known_hosts=known_hosts_file(self.fleet_dir), batch=True)

    def _wait_ssh(self, port: int, instance_id: str) -> None:
        last = ""
        for _ in range(SSH_READY_TRIES):
            proc = subprocess.run(self.ssh_argv(port, instance_id, "true"), capture_output=True, text=True, timeout=30,
                                  check=False, stdin=subprocess.DEVNULL)
            if proc.returncode == 0:
                return
            last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
            time.sleep(1)
        raise NodeCreateError(f"sshd on 127.0.0.1:{port} did not accept the key: {last}")

    # ---- nodes / down --------------------------------------------------------------------------------------------
    def nodes(self) -> list[Node]:
        docker = DockerCli()
        docker.check_engine()
        found = []
        for c in docker.containers(self._labels("node"), running_only=True):
            port = c.ports.get(SSH_PORT)
            if not c.running or port is None or LABEL_INSTANCE not in c.labels:
                continue
            region = c.labels.get(LABEL_REGION, "")
            found.append(Node(
                instance_id=c.labels[LABEL_INSTANCE], cluster=c.labels.get(LABEL_CLUSTER, ""),
                region=region, zone=None, host="127.0.0.1", port=port, user=NODE_USER,
                key_file=str(self.key_file), spot=False,
                cloud=str(self.fleet.cloud_of(region)) if region in self.fleet.regions else "aws",
            ))
        return sorted(found, key=lambda n: (n.region, n.cluster, n.instance_id))

    def down(self, progress: ProgressCallback) -> list[ClusterOutcome]:
        docker = DockerCli()
        docker.check_engine()
        nodes = docker.containers(self._labels("node"))
        regions = sorted(set(self.fleet.regions) | {c.labels.get(LABEL_REGION, "") for c in nodes} - {""})
        outcomes = []
        for region in regions:
            cluster = self.fleet.cluster_name(region)
            names = [c.name for c in nodes if c.labels.get(LABEL_REGION) == region]
            try:
                if names:
                    progress(cluster, f"removing {len(names)} node(s)")
                    docker.remove(names)
                outcomes.append(ClusterOutcome(cluster, region, Outcome.REMOVED if names else Outcome.UNCHANGED))
            except DockerError as exc:
                outcomes.append(ClusterOutcome(cluster, region, Outcome.FAILED, str(exc)))
        outcomes += self.orchestrator.remove(docker, progress, include_absent=self.local_orchestrator)
        labels = docker.network_labels(self.network)
        if labels is not None and labels.get(LABEL_FLEET) == self.fleet.name:
            try:
                docker.network_remove(self.network)
            except DockerError as exc:
                outcomes.append(ClusterOutcome(self.network, "local", Outcome.FAILED, str(exc)))
        return outcomes


def make(fleet: Fleet, state_dir: Path, notice: Callable[[str], None]) -> Provider:
    """The registry's factory (providers/local/__init__.py)."""
    return LocalProvider(fleet, state_dir)
