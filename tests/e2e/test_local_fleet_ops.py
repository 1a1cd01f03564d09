"""End to end, part 2, on the same local fleet (conftest.py; runs after test_local_fleet.py): the orchestrator's
view of a dead compute node, token rotation, rolling upgrades (good, broken, fixed), S3 key rotation with a
Ctrl-C between batches, the secret scan over everything, and down.
"""

from __future__ import annotations

import gzip
import json
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from local_fleet import (
    REPO,
    Fleet,
    build_variant,
    by_key,
    docker_out,
    proc_cmdlines,
    volumes,
    write_aws_credentials,
)

from tests.runplay import run_playbook

pytestmark = pytest.mark.e2e


# The local orchestrator's Orchestrator.NodeManager.DisconnectTimeout (providers/local_orchestrator.py).
DISCONNECT_TIMEOUT_S = 45


def _orchestrator_rows(fleet: Fleet) -> dict[str, dict[str, Any]]:
    """node -> the orchestrator's view of it, from `status` (one API read, no Ansible)."""
    _, status = fleet.json("status")
    assert status["orchestrator_note"] == "", status["orchestrator_note"]
    return {row["node"]: row["orchestrator"] for row in status["nodes"]}


def test_5c_a_dead_compute_node_turns_disconnected_within_the_heartbeat_timeout(fleet: Fleet) -> None:
    victim_id, victim = sorted(fleet.containers().items())[0]
    host = fleet.host(victim_id)
    assert _orchestrator_rows(fleet)[host]["connection"] == "CONNECTED"
    # SIGKILL: no goodbye reaches the orchestrator; only the missing heartbeats can tell it.
    docker_out("exec", victim, "docker", "kill", "--signal", "KILL", "bacalhau")
    killed = time.monotonic()
    while (row := _orchestrator_rows(fleet)[host])["connection"] == "CONNECTED":
        assert time.monotonic() - killed < DISCONNECT_TIMEOUT_S + 30, row
        time.sleep(3)
    assert row["connection"] == "DISCONNECTED" and row["ready"] is False, row

    _, health = fleet.json("health", expect=1)
    rows = by_key(health["nodes"], "node")
    assert rows[host]["health"] == "unhealthy"
    assert rows[host]["orchestrator"]["connection"] == "DISCONNECTED"
    assert any(f.startswith("orchestrator: DISCONNECTED") for f in rows[host]["failing"]), rows[host]
    others = [row for name, row in rows.items() if name != host]
    assert others and all(r["health"] == "healthy" and r["orchestrator"]["ready"] for r in others), others
    direct = run_playbook(REPO / "playbooks" / "health.yml", None, "-l", f"fleet_{fleet.name}", env=fleet.env)
    fleet.outputs.append(direct.stdout + direct.stderr)
    assert direct.rc != 0
    played = by_key(direct.result("Judge every node")["rows"], "node")
    assert played[host]["health"] == "unhealthy" and played[host]["orchestrator"]["connection"] == "DISCONNECTED"
    assert direct.result("Fail when a node is unhealthy or unreachable")["msg"] == f"Not healthy: {host}"

    fixed = fleet.deploy("configure")  # compose starts the service again: the node rejoins
    assert fixed.returncode == 0, fixed.stdout[-6000:]
    _, health = fleet.json("health")
    assert by_key(health["nodes"], "node")[host]["orchestrator"]["connection"] == "CONNECTED"


def test_5d_a_rotated_token_reaches_both_sides_and_every_node_rejoins(fleet: Fleet) -> None:
    new_token = f"tok-E2E-rotated-{uuid.uuid4().hex}"
    fleet.watcher.watch(new_token)
    before = {name: row["connected_since"] for name, row in _orchestrator_rows(fleet).items()}
    token_file = fleet.fleet_file.parent / "orchestrator.token"
    token_file.write_text(new_token + "\n")
    fleet.retired_tokens.append(fleet.token)
    fleet.token = new_token

    _, up = fleet.json("up")
    clusters = by_key(up["clusters"], "cluster")
    assert clusters[f"fleet-{fleet.name}-orchestrator"]["action"] == "relaunched"  # the orchestrator side
    assert all(n["state"] == "changed" for n in up["configure"]["nodes"]), up["configure"]["nodes"]
    assert up["joined"]["ok"] is True, up["joined"]
    rows = by_key(up["health"]["nodes"], "node")
    assert len(rows) == 3 and all(r["health"] == "healthy" for r in rows.values()), rows
    for name, row in rows.items():
        # Reconnected after the rotation: the new orchestrator only admits the new token.
        assert row["orchestrator"]["ready"] and row["orchestrator"]["connected_since"] != before.get(name), row
    for container in fleet.containers().values():
        config = docker_out("exec", container, "cat", "/etc/bacalhau/config.yaml")
        assert new_token in config and fleet.retired_tokens[-1] not in config


def _running_sensor(fleet: Fleet) -> dict[str, str]:
    """node -> the image its sensor container runs, read from the container itself."""
    return {fleet.host(i): docker_out("exec", c, "docker", "inspect", "--format", "{{.Config.Image}}", "sensor").strip()
            for i, c in fleet.containers().items()}


def test_5e_rolling_upgrade_goes_batch_by_batch_and_stops_at_a_broken_image(
        fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> None:
    work = tmp_path_factory.mktemp("variants")
    base = "localhost/sensor-double:test"
    # A second release of the stand-in, and a broken one: it starts, and never answers its health check.
    good = build_variant(base, f"{fleet.name}-v2", 'LABEL org.opencontainers.image.version="v2"', work / "v2.tar")
    broken = build_variant(base, f"{fleet.name}-broken", 'ENTRYPOINT ["sleep", "infinity"]', work / "broken.tar")
    original = _running_sensor(fleet)
    assert set(original.values()) == {base}

    fleet.set_sensor(good, work / "v2.tar")
    _, plan = fleet.json("configure", "--rolling", "--check", expect=3)
    assert [len(b) for b in plan["untouched"]] == [1, 1, 1] and plan["batches"] == []  # 25% of 3 -> 1 per batch
    assert sorted(plan["drift"]["drifted"]) == sorted(original)  # the image changes everywhere...
    assert _running_sensor(fleet) == original  # ...and nothing changed yet
    assert {v["sensor"] for v in plan["versions"]} == {base}

    _, rolled = fleet.json("configure", "--rolling")
    assert [b["passed"] for b in rolled["batches"]] == [True, True, True] and rolled["untouched"] == []
    assert [len(b["nodes"]) for b in rolled["batches"]] == [1, 1, 1]
    assert {v["node"]: v["sensor"] for v in rolled["versions"]} == dict.fromkeys(original, good)
    assert all(v["health"] == "healthy" for v in rolled["versions"]), rolled["versions"]

    fleet.set_sensor(broken, work / "broken.tar")
    _, stopped = fleet.json("configure", "--rolling", expect=1)
    assert len(stopped["batches"]) == 1 and stopped["batches"][0]["passed"] is False, stopped["batches"]
    (first,) = stopped["batches"][0]["nodes"]
    assert stopped["batches"][0]["failed"] == [first]
    assert [len(b) for b in stopped["untouched"]] == [1, 1]
    versions = {v["node"]: v for v in stopped["versions"]}
    assert versions[first]["sensor"] == broken and versions[first]["health"] == "unhealthy"
    others = [v for name, v in versions.items() if name != first]
    assert all(v["sensor"] == good and v["health"] == "healthy" for v in others), versions  # untouched, still fine
    assert {name: image for name, image in _running_sensor(fleet).items() if name != first} == {
        v["node"]: good for v in others}

    fleet.set_sensor(good, work / "v2.tar")  # the fix: back to the good release, and the roll converges
    _, fixed = fleet.json("configure", "--rolling")
    configured = {n["node"]: n["state"] for b in fixed["batches"] for n in b["configure"]["nodes"]}
    assert configured[first] == "changed"
    assert {state for name, state in configured.items() if name != first} == {"converged"}  # already done
    assert _running_sensor(fleet) == dict.fromkeys(original, good)
    assert all(v["health"] == "healthy" for v in fixed["versions"]), fixed["versions"]


def test_5f_s3_keys_rotate_batch_by_batch_and_no_node_keeps_the_old_ones(fleet: Fleet) -> None:
    old = list(fleet.aws_keys)
    new_id, new_secret = f"AKIAE2E{uuid.uuid4().hex[:13].upper()}", f"e2eRotated{uuid.uuid4().hex}"
    fleet.watcher.watch(new_secret)
    write_aws_credentials(fleet.fleet_file.parent / "aws-credentials", new_id, new_secret)
    fleet.retired_aws_keys += old
    fleet.aws_keys = [new_id, new_secret]

    # Ctrl-C once the second batch starts: the first batch is done and stamped, the rest is not.
    argv = [sys.executable, str(REPO / "deploy.py"), "-f", str(fleet.fleet_file), "configure", "--rolling",
            "--batch", "1"]
    proc = subprocess.Popen(argv, cwd=REPO, env=fleet.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("Batch 2/3"):
            break
    (first,) = [line.split(": ", 1)[1].strip() for line in seen if line.startswith("Batch 1/3")]
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    fleet.outputs.append("".join(seen) + out + err)
    assert proc.returncode == 130 and "interrupted" in err, "".join(seen)[-3000:] + out[-3000:] + err[-2000:]

    _, rolled = fleet.json("configure", "--rolling", "--batch", "2")  # the re-run continues
    assert [len(b["nodes"]) for b in rolled["batches"]] == [2, 1] and all(b["passed"] for b in rolled["batches"])
    states = {n["node"]: n["state"] for b in rolled["batches"] for n in b["configure"]["nodes"]}
    # The interrupted batch's node may already hold the new keys; it is run again either way (no stamp yet).
    assert states[first] == "converged" and {s for n, s in states.items() if n != first} <= {"changed", "ok"}, states
    for container in fleet.containers().values():
        credentials = docker_out("exec", container, "cat", "/etc/fleet/aws/credentials")
        assert new_secret in credentials and all(key not in credentials for key in old)
        mode = docker_out("exec", container, "stat", "-c", "%a %U", "/etc/fleet/aws/credentials").split()
        assert mode == ["600", "root"]


def test_5g_a_node_whose_host_key_changed_is_refused_alone_until_its_key_is_forgotten(fleet: Fleet) -> None:
    known_hosts = Path(fleet.env["FLEETDEPLOY_STATE_DIR"]) / fleet.name / "known_hosts"
    nodes = fleet.containers()
    # Pinned per instance id, and only the fleet's current instances (replaced ones were pruned).
    assert sorted(line.split()[0] for line in known_hosts.read_text().splitlines()) == sorted(nodes)
    changed_id, container = sorted(nodes.items())[0]
    # Someone else answers for this instance now: a new host key (and the open sessions end).
    docker_out("exec", container, "sh", "-c", "rm -f /etc/ssh/ssh_host_* && ssh-keygen -q -t ed25519 -N '' "
               "-f /etc/ssh/ssh_host_ed25519_key && systemctl restart ssh && (pkill -f '^sshd-session: ubuntu' || true)")
    _, health = fleet.json("health", expect=1)
    rows = by_key(health["nodes"], "node")
    refused = rows[fleet.host(changed_id)]
    assert refused["health"] == "unreachable", refused
    (message,) = refused["failing"]
    assert message.startswith(f"{fleet.host(changed_id)}: host key changed for instance {changed_id}, so the "
                              f"connection was refused (known hosts: {known_hosts})"), message
    assert all(r["health"] == "healthy" for name, r in rows.items() if name != fleet.host(changed_id)), rows
    ssh = fleet.deploy("ssh", changed_id, "true")
    assert ssh.returncode != 0 and "Host key verification failed" in ssh.stderr

    forget = message.split("forget the old key: ", 1)[1]
    assert forget == f"ssh-keygen -R {changed_id} -f {known_hosts}"
    subprocess.run(forget.split(), check=True, capture_output=True)
    _, health = fleet.json("health")
    assert all(r["health"] == "healthy" for r in health["nodes"]), health["nodes"]


def _login(key: Path, port: int) -> subprocess.CompletedProcess[str]:
    """ssh to a node with this key alone, on a connection of its own (no master of an earlier run answers)."""
    options = ["IdentitiesOnly=yes", "BatchMode=yes", "ControlPath=none", "StrictHostKeyChecking=no",
               "UserKnownHostsFile=/dev/null", "LogLevel=ERROR"]
    argv = ["ssh", "-i", str(key), "-p", str(port), *(arg for o in options for arg in ("-o", o)), "ubuntu@127.0.0.1"]
    return subprocess.run([*argv, "true"], capture_output=True, text=True, timeout=60)


def _end_ssh_masters() -> None:
    """The connections Ansible and the exchange keep open would answer without logging in again."""
    subprocess.run(["pkill", "-f", r"^ssh: .*\[mux\]$"], capture_output=True)


def test_5h_an_operators_own_key_is_installed_used_and_revoked(fleet: Fleet) -> None:
    operator = fleet.fleet_file.parent / "operator"
    launch_key = Path(fleet.env["FLEETDEPLOY_STATE_DIR"]) / fleet.name / "id_ed25519"
    hosts = yaml.safe_load(fleet.inventory.read_text())["all"]["children"][f"fleet_{fleet.name}"]["children"]
    ports = {name: values["ansible_port"] for region in hosts.values() for name, values in region["hosts"].items()}
    first = next(iter(hosts.values()))["hosts"]
    values = next(iter(first.values()))
    # The operator's key first, the provider's after it (a node launched a minute ago accepts only that one).
    assert values["ansible_ssh_private_key_file"] == str(operator)
    assert f"IdentityFile={launch_key}" in values["ansible_ssh_extra_args"]
    launch_line = launch_key.with_name("id_ed25519.pub").read_text().split()[:2]
    for container in fleet.containers().values():
        lines = docker_out("exec", container, "cat", "/home/ubuntu/.ssh/authorized_keys").splitlines()
        keys = [line.split()[:2] for line in lines if line and not line.startswith("#")]
        assert keys == [launch_line, (operator.with_name("operator.pub").read_text().split()[:2])], lines
    # A line someone adds outside the role's block is theirs: not drift, and kept.
    docker_out("exec", sorted(fleet.containers().values())[0], "sh", "-c",
               "echo '# added by hand' >> /home/ubuntu/.ssh/authorized_keys")
    _, check = fleet.json("configure", "--check")
    assert check["drifted"] == [] and all(n["state"] == "converged" for n in check["nodes"]), check["nodes"]

    # Without the provider's key the tool gets in with the operator's: health (the exchange), exec (Ansible), ssh.
    hidden = launch_key.with_name("id_ed25519.hidden")
    launch_key.rename(hidden)
    try:
        _end_ssh_masters()
        _, health = fleet.json("health")
        assert all(r["health"] == "healthy" for r in health["nodes"]), health["nodes"]
        ran = fleet.deploy("-o", "json", "exec", "all", "true")  # exec's words after `all` are the command
        assert ran.returncode == 0 and json.loads(ran.stdout)["ok"] is True, ran.stdout[-3000:] + ran.stderr[-3000:]
        node = sorted(ports)[0]
        assert fleet.deploy("ssh", node, "true").returncode == 0
    finally:
        hidden.rename(launch_key)

    # Taken out of the fleet file: the next configure revokes it, and the provider's key still gets in.
    text = fleet.fleet_file.read_text()
    fleet.fleet_file.write_text(text.replace("  authorized_keys: [operator.pub]\n  identity_file: operator\n",
                                             "  authorized_keys: []\n"))
    try:
        assert all(_login(operator, port).returncode == 0 for port in ports.values())
        _, configured = fleet.json("configure")
        assert configured["ok"] is True, configured["nodes"]
        for port in ports.values():
            refused = _login(operator, port)
            assert refused.returncode != 0 and "Permission denied" in refused.stderr, refused.stderr
            assert _login(launch_key, port).returncode == 0
        _end_ssh_masters()
        _, health = fleet.json("health")
        assert all(r["health"] == "healthy" for r in health["nodes"]), health["nodes"]
    finally:
        fleet.fleet_file.write_text(text)


def test_6_token_appears_only_in_the_nodes_config(fleet: Fleet) -> None:
    for output in fleet.outputs:
        for secret in fleet.secrets:
            assert secret not in output
    for secret in fleet.secrets:
        assert secret not in fleet.inventory.read_text()
        for log in (Path(fleet.env["FLEETDEPLOY_STATE_DIR"]) / fleet.name / "runs").glob("*.log"):
            assert secret not in log.read_text(errors="replace"), log
    assert fleet.inventory.stat().st_mode & 0o777 == 0o600
    # The bundles the nodes ran from (configure.mode: node) hold code, never a fleet's secret.
    bundles = list((REPO / ".cache" / "node-ansible").glob("bundle-*.tar.gz"))
    assert bundles
    for path in bundles:
        content = gzip.decompress(path.read_bytes())
        assert not any(secret.encode() in content for secret in fleet.secrets), path
    assert fleet.watcher.hits == []
    leftovers = list(Path(fleet.env["TMPDIR"]).iterdir())  # runner dirs, fd-capture files: nothing may stay
    assert leftovers == []
    for container in [*fleet.containers().values(), f"fleet-{fleet.name}-orchestrator"]:
        inspect, cmdlines = docker_out("inspect", container), proc_cmdlines(container)
        for secret in fleet.secrets:
            assert secret not in inspect
            assert secret not in cmdlines
    for container in fleet.containers().values():
        mode = docker_out("exec", container, "stat", "-c", "%a %U", "/etc/bacalhau/config.yaml").split()
        assert mode == ["600", "root"]
        config = docker_out("exec", container, "cat", "/etc/bacalhau/config.yaml")
        assert fleet.token in config
        assert all(old not in config for old in fleet.retired_tokens)  # no node keeps a rotated-out token


def test_7_down_leaves_nothing_of_the_fleet(fleet: Fleet) -> None:
    # The fleet's own volumes (each node's /var/lib/docker), named now: other tests may add volumes meanwhile.
    ours = {m["Name"] for c in fleet.containers().values()
            for m in json.loads(docker_out("inspect", "--format", "{{json .Mounts}}", c)) if m.get("Type") == "volume"}
    assert ours, "every node has an anonymous /var/lib/docker volume"
    result = fleet.deploy("down", "--yes")
    assert result.returncode == 0, result.stdout[-4000:]
    assert fleet.containers() == {}
    assert docker_out("ps", "-a", "--filter", f"name=fleet-{fleet.name}", "-q").strip() == ""
    assert docker_out("network", "ls", "--filter", f"name=fleet-{fleet.name}", "-q").strip() == ""
    assert ours & volumes() == set()
    assert not fleet.inventory.exists()
