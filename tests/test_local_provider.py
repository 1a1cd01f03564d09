"""Local provider: error paths against a fake docker CLI, and a real local fleet on this machine's engine (e2e)."""

from __future__ import annotations

import base64
import http.server
import json
import os
import secrets
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetdeploy.errors import InputError
from fleetdeploy.fleet.model import Fleet
from fleetdeploy.providers.base import ClusterOutcome, Node, Outcome
from fleetdeploy.providers.local.docker import DockerCli
from fleetdeploy.providers.local.image import ensure_node_image
from fleetdeploy.providers.local.provider import LocalProvider

REPO_ROOT = Path(__file__).resolve().parents[1]
DOUBLE_IMAGE = "localhost/bacalhau-double:test"
DOUBLE_ARCHIVE = REPO_ROOT / ".cache" / "images" / "bacalhau-double.tar"
TOKEN = "tok-" + secrets.token_hex(12)


def make_fleet(tmp_path: Path, name: str, *, local_orchestrator: bool, counts: dict[str, int] | None = None) -> Fleet:
    token_file = tmp_path / "orchestrator.token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    data: dict[str, object] = {
        "name": name,
        "provider": "local",
        "regions": {region: {"count": n} for region, n in (counts or {"us-east-1": 1, "eu-west-1": 1}).items()},
        "orchestrator": {"endpoint": "local" if local_orchestrator else "nats://127.0.0.1:4222",
                         "token_file": str(token_file)},
        "bacalhau": {"image": DOUBLE_IMAGE},
        "sensor": {"version": "v1.0.0"},
    }
    if local_orchestrator and DOUBLE_ARCHIVE.is_file():
        data["images"] = {"source": "archive", "bacalhau_archive": str(DOUBLE_ARCHIVE),
                          "sensor_archive": str(DOUBLE_ARCHIVE)}
    return Fleet.model_validate(data, context={"base_dir": tmp_path})


def no_progress(cluster: str, message: str) -> None:
    del cluster, message


# ---------------------------------------------------------------------------------------------------------------
# Unit level: a fake `docker` on PATH that logs every argv and answers like the real CLI would.

FAKE_DOCKER = r'''#!PYTHON
import fcntl, json, os, sys
args = sys.argv[1:]
# The provider creates regions and the orchestrator in parallel: one fake call at a time, like one engine's state.
lock = open(os.environ["FAKE_LOG"] + ".lock", "w")
fcntl.flock(lock, fcntl.LOCK_EX)
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(args) + "\n")
state_file = os.environ["FAKE_STATE"]
state = json.load(open(state_file)) if os.path.exists(state_file) else {}
mode = os.environ.get("FAKE_MODE", "ok")
def fail(msg, code=1):
    sys.stderr.write(msg + "\n"); sys.exit(code)
if args[0] == "version":
    if mode == "down":
        fail("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?")
    if mode == "denied":
        fail("permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock")
    print("20.10.24"); sys.exit(0)
if args[:2] == ["image", "inspect"]:
    sys.exit(0 if args[-1] in os.environ.get("FAKE_IMAGES", "").split(",") else 1)
if args[:2] == ["network", "inspect"]:
    fail("Error: No such network: " + args[-1])
if args[:2] == ["network", "create"] or args[0] == "rm":
    sys.exit(0)
if args[0] == "pull":
    fail("Error response from daemon: Get \"https://ghcr.io/v2/\": dial tcp: lookup ghcr.io: no such host")
if args[0] == "ps":
    sys.exit(0)
if args[0] == "run":
    name = args[args.index("--name") + 1]
    if "serve" not in args:
        fail("docker: Error response from daemon: driver failed programming external connectivity on endpoint "
             + name + ": Bind for 127.0.0.1:22 failed: port is already allocated.", 125)
    labels = dict(a.split("=", 1) for a in args[args.index("-d") + 1:] if "=" in a and a.startswith("fleetdeploy."))
    published = [args[i + 1] for i, a in enumerate(args) if a == "-p"]
    ports = {spec.rsplit(":", 1)[1]: [{"HostIp": spec.split(":")[0], "HostPort": str(40000 + i)}]
             for i, spec in enumerate(published)}
    if "1234/tcp" in ports and os.environ.get("FAKE_API_PORT"):  # the test's stand-in for Bacalhau's API
        ports["1234/tcp"][0]["HostPort"] = os.environ["FAKE_API_PORT"]
    running = mode != "orchestrator-exits"
    state[name] = {"labels": labels, "ports": ports, "running": running}
    json.dump(state, open(state_file, "w")); print("f" * 64); sys.exit(0)
if args[:2] == ["container", "inspect"]:
    print(json.dumps([{"Id": n, "Name": "/" + n,
                       "State": {"Running": state[n].get("running", True),
                                 "Status": "running" if state[n].get("running", True) else "exited"},
                       "Config": {"Labels": state[n]["labels"]}, "NetworkSettings": {"Ports": state[n]["ports"]}}
                      for n in args[2:] if n in state]))
    sys.exit(0 if all(n in state for n in args[2:]) else 1)
fail("fake docker: unexpected command " + " ".join(args), 3)
'''


@pytest.fixture
def fake_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH = the fake docker + /usr/bin (ssh, ssh-keygen; never /usr/sbin's debootstrap). Returns the argv log."""
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    script = bin_dir / "docker"
    script.write_text(FAKE_DOCKER.replace("PYTHON", sys.executable, 1))
    script.chmod(0o755)
    log = tmp_path / "docker-argv.log"
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_LOG", str(log))
    monkeypatch.setenv("FAKE_STATE", str(tmp_path / "docker-state.json"))
    return log


@pytest.fixture
def orchestrator_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """An HTTP server on loopback that answers Bacalhau's liveness path, published by the fake docker as the
    orchestrator's API port. Returns the paths it was asked for."""
    asked: list[str] = []

    class Alive(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server hook's name
            asked.append(self.path)
            ok = self.path == "/api/v1/agent/alive"
            body = b'{"Status":"OK"}' if ok else b"{}"
            self.send_response(200 if ok else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the hook's signature
            del format, args

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Alive)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("FAKE_API_PORT", str(server.server_address[1]))
    try:
        yield asked
    finally:
        server.shutdown()
        server.server_close()


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def assert_nothing_created(log: Path) -> None:
    made = [c for c in calls(log) if c[0] in ("run", "create", "load") or c[:2] == ["network", "create"]]
    assert made == []


def test_docker_missing_is_input_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    provider = LocalProvider(make_fleet(tmp_path, "lpt-unit", local_orchestrator=False), tmp_path / "state")
    for call in (lambda: provider.up(no_progress), provider.nodes, lambda: provider.down(no_progress)):
        with pytest.raises(InputError, match="docker CLI not found") as err:
            call()
        assert err.value.exit_code == 2 and "\n" not in str(err.value)
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize(("mode", "expected"), [("down", "not reachable"), ("denied", "permission denied")])
def test_engine_problems_are_one_line_input_errors(
    tmp_path: Path, fake_docker: Path, monkeypatch: pytest.MonkeyPatch, mode: str, expected: str
) -> None:
    monkeypatch.setenv("FAKE_MODE", mode)
    provider = LocalProvider(make_fleet(tmp_path, "lpt-unit", local_orchestrator=False), tmp_path / "state")
    with pytest.raises(InputError, match=expected) as err:
        provider.up(no_progress)
    assert err.value.exit_code == 2 and "\n" not in str(err.value)
    assert calls(fake_docker) == [["version", "--format", "{{.Server.Version}}"]]


def test_missing_node_image_without_debootstrap_is_input_error(tmp_path: Path, fake_docker: Path) -> None:
    assert shutil.which("debootstrap") is None  # the fixture's PATH leaves /usr/sbin out
    provider = LocalProvider(make_fleet(tmp_path, "lpt-unit", local_orchestrator=False), tmp_path / "state")
    with pytest.raises(InputError, match="localhost/fleet-node:trixie is missing.*debootstrap"):
        provider.up(no_progress)
    assert_nothing_created(fake_docker)


@pytest.mark.parametrize(("body", "expected"), [
    ("echo 'build-images: ERROR: debootstrap of fleet-node-base failed' >&2; exit 1", "debootstrap of fleet-node-base"),
    ("exit 0", "failed: exit code 0"),  # "succeeded" without producing the image: still an error
])
def test_failed_node_image_build_is_input_error(tmp_path: Path, fake_docker: Path, body: str, expected: str) -> None:
    for tool in ("debootstrap", "tar"):  # present, so the build script is really run
        stub = fake_docker.parent / "fakebin" / tool
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(0o755)
    script = tmp_path / "build-images.sh"
    script.write_text(f"echo started >{tmp_path}/build-ran\n{body}\n")
    docker = DockerCli()
    with pytest.raises(InputError, match=expected) as err:
        ensure_node_image("localhost/fleet-node:trixie", docker, script=script)
    assert "\n" not in str(err.value) and (tmp_path / "build-ran").exists()


def test_unpullable_service_images_are_named_with_the_archive_option(
    tmp_path: Path, fake_docker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_IMAGES", "localhost/fleet-node:trixie")
    fleet = make_fleet(tmp_path, "lpt-unit", local_orchestrator=True)
    fleet = fleet.model_copy(update={"images": fleet.images.model_copy(update={"source": "registry"})})
    with pytest.raises(InputError, match=f"{DOUBLE_IMAGE}.*images.source: archive") as err:
        LocalProvider(fleet, tmp_path / "state").up(no_progress)
    assert "\n" not in str(err.value) and fleet.sensor.image in str(err.value)
    # One bounded try per image (orchestrator/compute image and sensor image), no retry loop.
    assert [c[0] for c in calls(fake_docker)].count("pull") == 2
    assert_nothing_created(fake_docker)


def test_run_failure_fails_that_cluster_only_and_cleans_up(
    tmp_path: Path, fake_docker: Path, orchestrator_api: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_IMAGES", f"localhost/fleet-node:trixie,{DOUBLE_IMAGE}")
    fleet = make_fleet(tmp_path, "lpt-unit", local_orchestrator=True)
    provider = LocalProvider(fleet, tmp_path / "state")
    seen: list[tuple[str, str]] = []
    outcomes = provider.up(lambda cluster, message: seen.append((cluster, message)))

    by_cluster = {o.cluster: o for o in outcomes}
    assert by_cluster["fleet-lpt-unit-orchestrator"] == ClusterOutcome(
        "fleet-lpt-unit-orchestrator", "local", Outcome.LAUNCHED)
    for region in ("us-east-1", "eu-west-1"):  # the first failure did not stop the second region
        outcome = by_cluster[f"lpt-unit-{region}"]
        assert not outcome.ok and outcome.action == "failed" and "port is already allocated" in (outcome.error or "")
    argvs = calls(fake_docker)
    node_runs = [c for c in argvs if c[0] == "run" and "serve" not in c]
    assert len(node_runs) == 2
    for run in node_runs:
        name = run[run.index("--name") + 1]
        assert ["rm", "-f", "-v", name] in argvs  # the half-made container is removed with its volumes
        assert "-p" in run and run[run.index("-p") + 1] == "127.0.0.1::22"
        assert "--privileged" not in run and "--cap-add=SYS_ADMIN" in run and "--cap-add=SYS_RESOURCE" not in run
    assert ["network", "create", "--label", "fleetdeploy.fleet=lpt-unit", "fleet-lpt-unit"] in argvs
    # The token reaches the orchestrator only through its 0600 config file, never an argument.
    assert all(TOKEN not in arg for argv in argvs for arg in argv)
    config = provider.orchestrator.config_file
    assert stat.S_IMODE(config.stat().st_mode) == 0o600 and TOKEN in config.read_text()
    orch_run = next(c for c in argvs if c[0] == "run" and "serve" in c)
    assert f"{config}:/etc/bacalhau/config.yaml:ro" in orch_run
    assert orch_run[-3:] == ["serve", "--config", "/etc/bacalhau/config.yaml"]
    assert any(cluster == "lpt-unit-us-east-1" for cluster, _ in seen)
    key = tmp_path / "state" / "lpt-unit" / "id_ed25519"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_plan_and_inventory_vars_need_no_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    provider = LocalProvider(make_fleet(tmp_path, "lpt-unit", local_orchestrator=True,
                                        counts={"us-east-1": 2, "eu-west-1": 1}), tmp_path / "state")
    plans = provider.plan()
    assert [(p.cluster, p.num_nodes, p.spot, p.zone) for p in plans] == [
        ("lpt-unit-eu-west-1", 1, False, None), ("lpt-unit-us-east-1", 2, False, None)]
    assert "fleet-lpt-unit-us-east-1-lc-" in plans[1].rendered_task
    assert provider.orchestrator_endpoint() == "nats://fleet-lpt-unit-orchestrator:4222"
    assert provider.extra_inventory_vars() == {
        "docker_daemon_environment": {"DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE": "1"},
        "sensor_identity_imds_enabled": False,
        "health_check_imds_enabled": False,
        "bacalhau_environment": {"AWS_EC2_METADATA_DISABLED": "true"},
        "bacalhau_orchestrator_endpoint": "nats://fleet-lpt-unit-orchestrator:4222",
    }


# ---------------------------------------------------------------------------------------------------------------
# End to end: a real local fleet on this machine's Docker engine.

def _docker_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


needs_docker = pytest.mark.skipif(not _docker_answers(), reason="`docker info` fails: no usable Docker engine here")

# Sends the token (read from stdin, never argv) to the orchestrator's NATS port; prints the server's answer.
NATS_PROBE = textwrap.dedent("""
    import socket, sys
    host, token = sys.argv[1], sys.stdin.readline().strip()
    s = socket.create_connection((host, 4222), timeout=10)
    f = s.makefile("rwb")
    assert f.readline().startswith(b"INFO ")
    f.write(b'CONNECT {"auth_token": "%s", "verbose": false, "pedantic": false}\\r\\nPING\\r\\n' % token.encode())
    f.flush()
    print(f.readline().decode().strip())
""")


PROBE_ARG = shlex.quote(f"import base64; exec(base64.b64decode('{base64.b64encode(NATS_PROBE.encode()).decode()}'))")


def docker_out(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60, check=True).stdout


def ssh(provider: LocalProvider, node: Node, command: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(provider.ssh_argv(node.port, node.instance_id, command), input=stdin, capture_output=True,
                          text=True, timeout=120, check=False)


def fleet_containers(name: str) -> list[str]:
    return docker_out("ps", "-a", "--filter", f"label=fleetdeploy.fleet={name}", "--format", "{{.Names}}").split()


def ensure_double_image() -> None:
    """The orchestrator double comes from scripts/build-images.sh (it skips images that already exist)."""
    if not DOUBLE_ARCHIVE.is_file():
        subprocess.run(["bash", str(REPO_ROOT / "scripts" / "build-images.sh")], check=True, timeout=1800)


@pytest.fixture
def local_fleet(tmp_path: Path):
    ensure_double_image()
    name = f"lpt-{secrets.token_hex(3)}"
    provider = LocalProvider(make_fleet(tmp_path, name, local_orchestrator=True), tmp_path / "state")
    # A container of another fleet whose name shares the prefix: nothing of this fleet may touch it.
    decoy = f"fleet-{name}x-us-east-1-lc-0000000000"
    docker_out("create", "--name", decoy, "--label", f"fleetdeploy.fleet={name}x", "--label",
               "fleetdeploy.role=node", "--label", "fleetdeploy.region=us-east-1", "localhost/fleet-node:trixie")
    try:
        yield provider, decoy
    finally:
        provider.down(no_progress)
        subprocess.run(["docker", "rm", "-f", "-v", decoy], capture_output=True, check=False)


@pytest.mark.e2e
@needs_docker
def test_local_fleet_lifecycle(local_fleet: tuple[LocalProvider, str]) -> None:
    provider, decoy = local_fleet
    name = provider.fleet.name
    orchestrator = f"fleet-{name}-orchestrator"

    outcomes = provider.up(no_progress)
    assert sorted((o.cluster, o.ok, o.action) for o in outcomes) == sorted([
        (f"{name}-eu-west-1", True, "launched"), (f"{name}-us-east-1", True, "launched"),
        (orchestrator, True, "launched")])
    nodes = provider.nodes()
    assert [(n.region, n.host, n.user, n.spot) for n in nodes] == [
        ("eu-west-1", "127.0.0.1", "ubuntu", False), ("us-east-1", "127.0.0.1", "ubuntu", False)]
    for node in nodes:
        assert node.instance_id.startswith("lc-") and len(node.instance_id) == 13
        assert Path(node.key_file).is_absolute() and node.cluster == f"{name}-{node.region}"
        checks = ssh(provider, node, "sudo -n true && hostname && sudo -n systemctl is-system-running; "
                     "sudo -n docker info --format '{{.ServerVersion}}'")
        assert checks.returncode == 0, checks.stderr
        host, system_state, engine = checks.stdout.split()
        assert host == f"{name}-{node.instance_id}" and system_state in ("running", "degraded") and engine
        # The orchestrator is reachable by name from the fleet network and enforces exactly this token.
        for token, answer in ((TOKEN, "PONG"), ("wrong-token", "-ERR 'Authorization Violation'")):
            probe = ssh(provider, node, f"python3 -c {PROBE_ARG} {orchestrator}", stdin=token + "\n")
            assert probe.stdout.strip() == answer, probe.stderr

    # The token is on no command line, in no env, in no container metadata on this machine.
    assert TOKEN not in docker_out("inspect", orchestrator)
    processes = subprocess.run(["ps", "-eww", "-o", "args="], capture_output=True, text=True, check=True).stdout
    assert TOKEN not in processes

    # Idempotent: a second up changes nothing.
    again = provider.up(no_progress)
    assert {o.action for o in again} == {"unchanged"}
    assert provider.nodes() == nodes

    # A lost node (like a preempted spot VM) is replaced by exactly one new instance; the other keeps its id.
    lost, kept = nodes
    docker_out("rm", "-f", "-v", f"fleet-{name}-{lost.region}-{lost.instance_id}")
    healed = {o.cluster: o.action for o in provider.up(no_progress)}
    # Its cluster had no node left, so (as with SkyPilot after a total preemption) it is launched afresh.
    assert healed == {lost.cluster: "launched", kept.cluster: "unchanged", orchestrator: "unchanged"}
    after = provider.nodes()
    assert len(after) == 2 and kept in after and lost not in after
    new = next(n for n in after if n.region == lost.region)
    assert new.instance_id != lost.instance_id and ssh(provider, new, "sudo -n true").returncode == 0

    # A stopped node counts as preempted too: it is removed (with its volume) and replaced.
    stopped = f"fleet-{name}-{kept.region}-{kept.instance_id}"
    docker_out("stop", "-t", "5", stopped)
    assert kept not in provider.nodes()
    healed = {o.cluster: o.action for o in provider.up(no_progress)}
    assert healed == {kept.cluster: "relaunched", lost.cluster: "unchanged", orchestrator: "unchanged"}
    assert stopped not in fleet_containers(name) and len(provider.nodes()) == 2

    # down removes this fleet's containers, their volumes and the network — and nothing else.
    volumes = [m["Name"] for c in fleet_containers(name)
               for m in json.loads(docker_out("inspect", c))[0]["Mounts"] if m["Type"] == "volume"]
    assert len(volumes) >= 2
    removed = provider.down(no_progress)
    assert all(o.ok for o in removed) and {o.action for o in removed} == {"removed"}
    assert fleet_containers(name) == [] and provider.nodes() == []
    assert not set(volumes) & set(docker_out("volume", "ls", "-q").split())
    assert docker_out("network", "ls", "-q", "--filter", f"name=^fleet-{name}$") == ""
    assert not provider.orchestrator.config_file.exists()
    assert decoy in docker_out("ps", "-a", "--format", "{{.Names}}").split()
    # Idempotent: down again finds nothing and fails nowhere.
    assert {(o.ok, o.action) for o in provider.down(no_progress)} == {(True, "unchanged")}


def test_privileged_setting_replaces_the_capability_list(tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path, "lpt-unit", local_orchestrator=False)
    privileged = fleet.model_copy(update={"local": fleet.local.model_copy(update={"privileged": True})})
    for chosen, expect_privileged in ((fleet, False), (privileged, True)):
        args = LocalProvider(chosen, tmp_path / "state")._run_args("n", "us-east-1", "lc-0123456789")
        assert ("--privileged" in args) is expect_privileged
        assert any(a.startswith("--cap-add=") for a in args) is not expect_privileged
        for option in (["-v", "/var/lib/docker"], ["--stop-signal", "SIGRTMIN+3"], ["-p", "127.0.0.1::22"],
                       ["--hostname", "lpt-unit-lc-0123456789"], ["--network", "fleet-lpt-unit"]):
            assert any(args[i:i + 2] == option for i in range(len(args))), option
        assert args[-2:] == ["localhost/fleet-node:trixie", "/lib/systemd/systemd"]
        assert "fleetdeploy.instance-id=lc-0123456789" in args


def test_orchestrator_is_replaced_only_when_its_config_changes(
    tmp_path: Path, fake_docker: Path, orchestrator_api: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_IMAGES", f"localhost/fleet-node:trixie,{DOUBLE_IMAGE}")
    fleet = make_fleet(tmp_path, "lpt-unit", local_orchestrator=True, counts={"us-east-1": 1})
    provider = LocalProvider(fleet, tmp_path / "state")
    orchestrator = "fleet-lpt-unit-orchestrator"

    def action() -> str:
        return next(o.action for o in provider.up(no_progress) if o.cluster == orchestrator)

    assert action() == "launched"
    run = next(argv for argv in calls(fake_docker) if argv[0] == "run" and "serve" in argv)
    # The API is published on loopback only (health/status/up read the orchestrator's view there).
    assert [a for i, a in enumerate(run) if i and run[i - 1] == "-p"] == ["127.0.0.1::1234/tcp"]
    assert provider.orchestrator_api_url() == f"http://127.0.0.1:{os.environ['FAKE_API_PORT']}"
    assert orchestrator_api and set(orchestrator_api) == {"/api/v1/agent/alive"}  # up waited for the API
    assert action() == "unchanged"
    fleet.orchestrator.token_file.write_text("rotated-" + TOKEN)
    assert action() == "relaunched"
    assert ["rm", "-f", "-v", orchestrator] in calls(fake_docker)
    assert "rotated-" + TOKEN in provider.orchestrator.config_file.read_text()
    assert all(TOKEN not in arg for argv in calls(fake_docker) for arg in argv)


def test_orchestrator_that_exits_at_start_fails_at_once(
    tmp_path: Path, fake_docker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_IMAGES", f"localhost/fleet-node:trixie,{DOUBLE_IMAGE}")
    monkeypatch.setenv("FAKE_MODE", "orchestrator-exits")
    provider = LocalProvider(make_fleet(tmp_path, "lpt-unit", local_orchestrator=True, counts={"us-east-1": 1}),
                             tmp_path / "state")
    outcome = next(o for o in provider.up(no_progress) if o.cluster == "fleet-lpt-unit-orchestrator")
    assert outcome.action == "failed" and "exited right after start" in (outcome.error or "")
    assert "docker logs fleet-lpt-unit-orchestrator" in (outcome.error or "")


def test_orchestrator_whose_api_never_answers_fails_after_the_timeout(
    tmp_path: Path, fake_docker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fleetdeploy.providers.local import orchestrator as local_orchestrator

    monkeypatch.setenv("FAKE_IMAGES", f"localhost/fleet-node:trixie,{DOUBLE_IMAGE}")
    with socket.socket() as closed:  # a loopback port nothing listens on
        closed.bind(("127.0.0.1", 0))
        monkeypatch.setenv("FAKE_API_PORT", str(closed.getsockname()[1]))
    monkeypatch.setattr(local_orchestrator, "READY_TIMEOUT", 1.0)
    provider = LocalProvider(make_fleet(tmp_path, "lpt-unit", local_orchestrator=True, counts={"us-east-1": 1}),
                             tmp_path / "state")
    outcome = next(o for o in provider.up(no_progress) if o.cluster == "fleet-lpt-unit-orchestrator")
    assert outcome.action == "failed" and "API did not answer within 1 s" in (outcome.error or "")
