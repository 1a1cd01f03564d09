"""The world of the suite against the real SkyPilot 0.14.1 SDK and its local API server (facts.md: SkyPilot offline).

Per test module, one `SkyWorld`:
- REAL: SkyPilot's API server (started by the CLI's first SDK call, in a throw-away HOME on its own port), its
  request handling, state DB, task/config validation and AWS credentials check; container nodes made by the local
  provider (systemd, sshd, dockerd, user `ubuntu`) with a local Bacalhau orchestrator double; SSH; Ansible.
- SEEDED: the cluster records, written with SkyPilot's own state code (sky_side.py `seed`) and pointing at those
  containers through 127.0.0.1 and their published SSH ports; a small AWS catalog file.
No AWS and no network beyond 127.0.0.1 and the fleet's own containers: every AWS credential variable is removed,
instance metadata is disabled, and HTTP(S) goes to a closed port on 127.0.0.1 should anything try.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from fleetdeploy.fleet.model import load_fleet
from fleetdeploy.providers.local.provider import LocalProvider

REPO = Path(__file__).resolve().parents[2]
ARCHIVES = REPO / ".cache" / "images"
SKY_SIDE = Path(__file__).with_name("sky_side.py")
IMAGES = ("localhost/fleet-node:trixie", "localhost/bacalhau-double:test", "localhost/sensor-double:test")
CATALOG_HEADER = ("InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,Region,"
                  "AvailabilityZone,Arch,LocalDiskType,NVMeSupported,LocalDiskSize,LocalDiskCount,"
                  "MaximumEfaInterfaces")
AZURE_CATALOG_HEADER = ("InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,Region,"
                        "Generation")
# region -> (zone name for the records, zone ID for the catalog: without AWS, SkyPilot cannot map IDs to names)
ZONES = {"us-east-1": ("us-east-1a", "use1-az1"), "us-east-2": ("us-east-2a", "use2-az1"),
         "us-west-2": ("us-west-2a", "usw2-az1")}
# The seeded GCP and Azure clusters: records only; their node addresses are a closed port on loopback.
GCP_REGION, AZURE_REGION = "us-central1", "eastus"
CLOSED_PORT = 9
# Where anything that ignores the rules would send HTTP(S): a closed port on loopback, never the internet.
BLACKHOLE_PROXY = "http://127.0.0.1:9"
STAMP = "/var/lib/fleetdeploy/converged.json"


def free_port() -> int:
    """A loopback port that is free, and whose queue-manager twin (sky/server/requests/queues/mp_queue.py) is too."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        twin = 50000 + (11 + port - 46580) % 10000
        try:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", twin))
        except OSError:
            continue
        if port != twin:
            return port
    raise RuntimeError("no free port pair for the API server")


def sky_environment(home: Path, state: Path, port: int) -> dict[str, str]:
    """The environment of every process that imports sky: isolated, offline, credential-free."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("AWS_", "SKYPILOT_")) and key.lower() not in ("http_proxy", "https_proxy",
                                                                                "no_proxy", "all_proxy")}
    env.update({
        "HOME": str(home), "FLEETDEPLOY_STATE_DIR": str(state),
        "SKYPILOT_DISABLE_USAGE_COLLECTION": "1", "SKYPILOT_API_SERVER_LOCAL_PORT": str(port),
        "AWS_EC2_METADATA_DISABLED": "true",
        "HTTP_PROXY": BLACKHOLE_PROXY, "HTTPS_PROXY": BLACKHOLE_PROXY, "http_proxy": BLACKHOLE_PROXY,
        "https_proxy": BLACKHOLE_PROXY, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
        "NO_COLOR": "1", "COLUMNS": "250",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    })
    return env


def write_catalog(home: Path) -> None:
    """Each cloud's default type in the regions used; without `.meta/<cloud>/vms.csv.md5` SkyPilot never
    re-downloads a catalog."""
    rows = {
        "aws": [f"t3.medium,,,2.0,4.0,,0.0416,0.0125,{region},{zone_id},x86_64,,,,,0"
                for region, (_, zone_id) in ZONES.items()],
        "gcp": [f"e2-medium,,,2.0,4.0,,0.0335,0.0101,{GCP_REGION},{GCP_REGION}-{z},x86_64,,,,,0" for z in "ab"],
        "azure": [f"Standard_B2s,,,2.0,4.0,,0.0416,0.0083,{AZURE_REGION},V2"],
    }
    for cloud, lines in rows.items():
        path = home / ".sky" / "catalogs" / "v8" / cloud / "vms.csv"
        path.parent.mkdir(parents=True)
        # Azure's catalog has columns of its own, without AvailabilityZone (fetch_azure.py's USEFUL_COLUMNS).
        header = AZURE_CATALOG_HEADER if cloud == "azure" else CATALOG_HEADER
        path.write_text("\n".join([header, *lines]) + "\n")


def api_server_processes(port: int) -> list[psutil.Process]:
    """Found the way `sky api stop` finds it: the module on the command line, with our port."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if "-m sky.server.server" in cmdline and f"--port={port}" in cmdline:
            found.append(proc)
    return found


def processes_with_home(home: Path) -> list[int]:
    """Every process running with our throw-away HOME: all of them descend from this suite's commands."""
    marker = f"HOME={home}\0".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if environ.startswith(marker) or b"\0" + marker in environ:
            pids.append(int(entry.name))
    return pids


def stop_api_server(port: int, home: Path) -> None:
    """SIGKILL the server, its workers, then whatever else still runs in our HOME (e.g. ssh ControlPersist)."""
    for server in api_server_processes(port):
        try:
            victims = [*server.children(recursive=True), server]
        except psutil.NoSuchProcess:
            continue
        for victim in victims:
            try:
                victim.kill()
            except psutil.NoSuchProcess:
                pass
        try:
            os.killpg(server.pid, signal.SIGKILL)  # started with start_new_session: it leads its own group
        except (ProcessLookupError, PermissionError):
            pass
    for pid in processes_with_home(home):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    lingering = set(processes_with_home(home))
    psutil.wait_procs([p for p in psutil.process_iter() if p.pid in lingering], timeout=10)


def _docker(*args: str, stdin: str | None = None) -> str:
    return subprocess.run(["docker", *args], input=stdin, capture_output=True, text=True, check=True,
                          timeout=300).stdout


@dataclass(frozen=True)
class NodeBox:
    """One local-provider container that stands in for one AWS instance."""

    instance_id: str  # the id SkyPilot's record gives it (AWS-shaped)
    container: str
    port: int  # sshd published on 127.0.0.1
    internal_ip: str  # the container's address on the fleet network


@dataclass
class SkyWorld:
    work: Path
    home: Path
    port: int
    env: dict[str, str]
    name: str  # the SkyPilot fleet under test
    other: str  # another fleet, whose cluster must never be touched
    local_name: str  # the local fleet that owns the containers
    token_file: Path
    private_key: str = ""
    boxes: dict[str, list[NodeBox]] = field(default_factory=dict)  # cluster -> its nodes
    outputs: list[str] = field(default_factory=list)

    def cluster(self, region: str, fleet: str | None = None) -> str:
        return f"{fleet or self.name}-{region}"

    def host(self, box: NodeBox) -> str:
        return f"{self.name}-{box.instance_id}"

    @property
    def inventory(self) -> Path:
        return REPO / "inventory" / f"{self.name}.yml"

    def fleet_file(self, label: str, regions: dict[str, int], clouds: dict[str, str] | None = None) -> Path:
        """A SkyPilot fleet file whose nodes reach the local orchestrator by its name on the fleet network;
        `clouds`: a region's `cloud:` key (aws, the default, when not named)."""
        path = self.work / f"{label}.yaml"
        cloud = clouds or {}
        lines = "\n".join(f"  {region}: {{count: {count}" + (f", cloud: {cloud[region]}}}" if region in cloud else "}")
                          for region, count in regions.items())
        path.write_text(f"""name: {self.name}
regions:
{lines}
orchestrator:
  endpoint: nats://fleet-{self.local_name}-orchestrator:4222
  token_file: {self.token_file}
bacalhau: {{version: v1.9.3, image: "localhost/bacalhau-double:test"}}
sensor: {{version: test, image: "localhost/sensor-double:test"}}
images:
  source: archive
  bacalhau_archive: {ARCHIVES / 'doubles.tar'}
  sensor_archive: {ARCHIVES / 'doubles.tar'}
labels: {{team: sky-real}}
role_vars:
  docker_daemon_environment: {{DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE: "1"}}
  sensor_identity_imds_enabled: false
  health_check_imds_enabled: false
  bacalhau_environment: {{AWS_EC2_METADATA_DISABLED: "true"}}
""")
        return path

    def deploy(self, fleet_file: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, str(REPO / "deploy.py"), "-f", str(fleet_file), *args], cwd=REPO,
                                env=self.env, capture_output=True, text=True, timeout=timeout,
                                stdin=subprocess.DEVNULL)
        self.outputs.append(f"$ deploy.py {' '.join(args)}\n{result.stdout}\n{result.stderr}")
        return result

    def sky(self, command: str, *args: Any) -> Any:
        """Run sky_side.py in SkyPilot's world; its JSON answer."""
        proc = subprocess.run([sys.executable, str(SKY_SIDE), command, *(json.dumps(a) for a in args)], cwd=self.work,
                              env=self.env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, f"sky_side {command} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def requests(self, name: str) -> list[dict[str, Any]]:
        """The requests called `name` (sky.launch, sky.down, sky.status) the CLI made, oldest first."""
        # Ours (sky_side.py) also reach the server: only deploy.py's count as the product's calls.
        mine = [r for r in self.sky("requests") if r["name"] == name and "deploy.py" in r["entrypoint_command"]]
        return sorted(mine, key=lambda r: r["created_at"])

    def docker_hostname(self, box: NodeBox) -> str:
        return _docker("exec", box.container, "cat", "/etc/hostname").strip()

    def stamp(self, box: NodeBox) -> bool:
        """Whether the node carries site.yml's convergence stamp."""
        check = subprocess.run(["docker", "exec", box.container, "test", "-f", STAMP], capture_output=True, timeout=60)
        return check.returncode == 0

    def remove_stamp(self, box: NodeBox) -> None:
        _docker("exec", box.container, "rm", "-f", STAMP)


def _local_fleet_file(work: Path, name: str, token_file: Path) -> Path:
    path = work / "local.yaml"
    path.write_text(f"""name: {name}
provider: local
regions:
  us-east-1: {{count: 2}}
  us-east-2: {{count: 1}}
orchestrator: {{endpoint: local, token_file: {token_file}}}
bacalhau: {{version: v1.9.3, image: "localhost/bacalhau-double:test"}}
sensor: {{version: test, image: "localhost/sensor-double:test"}}
images:
  source: archive
  bacalhau_archive: {ARCHIVES / 'doubles.tar'}
  sensor_archive: {ARCHIVES / 'doubles.tar'}
""")
    return path


def _boxes(provider: LocalProvider, local_name: str) -> dict[str, list[NodeBox]]:
    """The local fleet's containers per local region, each given an AWS-shaped instance id."""
    found: dict[str, list[NodeBox]] = {}
    for node in provider.nodes():
        container = f"fleet-{local_name}-{node.region}-{node.instance_id}"
        address = _docker("inspect", "-f", f'{{{{(index .NetworkSettings.Networks "fleet-{local_name}").IPAddress}}}}',
                          container).strip()
        found.setdefault(node.region, []).append(
            NodeBox(f"i-0{uuid.uuid4().hex[:16]}", container, node.port, address))
    return found


def _remove_local(provider: LocalProvider, local_name: str) -> None:
    try:
        provider.down(lambda cluster, message: None)
    finally:
        leftovers = _docker("ps", "-aq", "--filter", f"label=fleetdeploy.fleet={local_name}").split()
        if leftovers:
            subprocess.run(["docker", "rm", "-f", "-v", *leftovers], capture_output=True, timeout=120)
        subprocess.run(["docker", "network", "rm", f"fleet-{local_name}"], capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SkyWorld]:
    for archive in ("doubles.tar",):
        if not (ARCHIVES / archive).is_file():
            pytest.fail(f"{ARCHIVES / archive} is missing: run scripts/build-images.sh (scripts/setup.sh does)")
    for image in IMAGES:
        if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode != 0:
            pytest.fail(f"image {image} is missing: run scripts/build-images.sh")
    work = tmp_path_factory.mktemp("sky-real")
    home, state, port = work / "home", work / "state", free_port()
    home.mkdir()
    tag = uuid.uuid4().hex[:6]
    token_file = work / "orchestrator.token"
    token_file.write_text(f"tok-SKY-{uuid.uuid4().hex}\n")
    token_file.chmod(0o600)
    world = SkyWorld(work=work, home=home, port=port, env=sky_environment(home, state, port), name=f"skr{tag}",
                     other=f"skr{tag}-other", local_name=f"skr{tag}l", token_file=token_file)
    write_catalog(home)
    local = LocalProvider(load_fleet(_local_fleet_file(work, world.local_name, token_file)), state)
    try:
        outcomes = local.up(lambda cluster, message: None)
        assert all(o.ok for o in outcomes), outcomes
        boxes = _boxes(local, world.local_name)
        east1, east2 = boxes["us-east-1"], boxes["us-east-2"]
        world.boxes = {world.cluster("us-east-1"): east1, world.cluster("us-east-2"): east2,
                       world.cluster("us-east-1", world.other): east1[:1]}

        def record(cluster: str, region: str, launched: int, ready: bool) -> dict[str, Any]:
            nodes = [{"instance_id": b.instance_id, "internal_ip": b.internal_ip, "port": b.port}
                     for b in world.boxes[cluster]]
            return {"name": cluster, "region": region, "zone": ZONES[region][0], "launched_nodes": launched,
                    "ready": ready, "nodes": nodes}

        # us-east-1: UP and complete. us-east-2: INIT, launched with 2, one survivor (partial spot preemption).
        # us-west-2: no record. The other fleet's cluster reuses an address: only its name tells it apart.
        # A GCP and an Azure cluster, each INIT with one survivor of two: records only, their address a closed port.
        def elsewhere(cloud: str, region: str, zone: str | None, kind: str, ip: str) -> dict[str, Any]:
            instance = f"{world.cluster(region)}-2ea4-head"
            return {"name": world.cluster(region), "cloud": cloud, "region": region, "zone": zone,
                    "instance_type": kind, "launched_nodes": 2, "ready": False,
                    "nodes": [{"instance_id": instance, "internal_ip": ip, "port": CLOSED_PORT}]}

        keys = world.sky("seed", {"clusters": [
            record(world.cluster("us-east-1"), "us-east-1", 2, True),
            record(world.cluster("us-east-2"), "us-east-2", 2, False),
            record(world.cluster("us-east-1", world.other), "us-east-1", 1, True),
            elsewhere("gcp", GCP_REGION, f"{GCP_REGION}-a", "e2-medium", "10.128.0.2"),
            elsewhere("azure", AZURE_REGION, None, "Standard_B2s", "10.0.0.4"),
        ]})
        world.private_key = keys["private_key"]
        public_key = Path(keys["public_key"]).read_text()
        for box in east1 + east2:
            # As on a SkyPilot-made VM: the ubuntu user holds SkyPilot's own key.
            _docker("exec", "-i", box.container, "sh", "-c", "cat >> /home/ubuntu/.ssh/authorized_keys",
                    stdin=public_key)
        yield world
    finally:
        try:
            stop_api_server(port, home)
            _remove_local(local, world.local_name)
            for name in (world.name, world.local_name, world.other):
                (REPO / "inventory" / f"{name}.yml").unlink(missing_ok=True)
        finally:
            log = home / ".sky" / "api_server" / "server.log"
            if log.is_file():
                print(f"API server log (tail):\n{log.read_text(errors='replace')[-3000:]}")
    assert api_server_processes(port) == [], "the API server outlived the suite"
    assert processes_with_home(home) == [], "processes from the suite's HOME outlived it"
    assert _docker("ps", "-aq", "--filter", f"label=fleetdeploy.fleet={world.local_name}").strip() == ""
    assert _docker("network", "ls", "-q", "--filter", f"name=fleet-{world.local_name}").strip() == ""
