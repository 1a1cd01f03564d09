"""The CLI against the real SkyPilot 0.14.1 SDK and local API server, with local container nodes (no AWS).

Real: SkyPilot's API server (the CLI's first call starts it), its state DB, request handling, task and config
validation and its AWS credentials check; the nodes (local-provider containers: systemd, sshd, dockerd), SSH with
SkyPilot's own key, Ansible, the health check. Seeded (conftest.py, with SkyPilot's own state code): the records
of three clusters — `<fleet>-us-east-1` UP with 2 nodes, `<fleet>-us-east-2` INIT (launched with 2, one survivor),
`<other>-us-east-1` of another fleet — and a small AWS catalog. `<fleet>-us-west-2` has no record.

Offline, every `sky.launch`/`sky.down` the CLI makes must get past SkyPilot's validation and stop at the AWS
credentials check; the server's own request list shows which requests ran and what they raised.

The tests run in order on one fleet (module-scoped): inventory → status → plan → up (three regions) → up
(complete) → up (resize) → configure / health / ssh → down → SDK coverage → secrets.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from sky_world import SkyWorld, api_server_processes, table_rows

pytestmark = pytest.mark.e2e

CREDENTIALS_HINT = "AWS credentials are missing or unusable (run: sky check aws)"
NO_ACCESS_HINT = "no usable cloud access (run: sky check aws)"
# What SkyPilot raises when a task or config is wrong: none of these may be why a request failed.
VALIDATION_ERRORS = {"InvalidSkyPilotConfigError", "ResourcesMismatchError", "ValueError", "InvalidTaskError",
                     "ResourcesUnavailableError", "ConnectionError", "NotSupportedError"}
THREE_REGIONS = {"us-east-1": 2, "us-east-2": 2, "us-west-2": 1}


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout[-6000:]}\n--- stderr\n{result.stderr[-4000:]}"


def _launches(world: SkyWorld) -> dict[str, list[dict[str, Any]]]:
    """sky.launch requests on the server, per cluster, oldest first."""
    found: dict[str, list[dict[str, Any]]] = {}
    for request in world.requests("sky.launch"):
        found.setdefault(request["cluster_name"], []).append(request)
    return found


def _assert_credentials_stop(request: dict[str, Any], expected: str) -> None:
    """The request ran on the server, passed validation, and failed at the cloud-access check."""
    assert request["status"].endswith("FAILED"), request
    error = request["error"]
    assert error is not None and error["module"] == "sky.exceptions", request
    assert error["type"] == expected and error["type"] not in VALIDATION_ERRORS, error
    # NO_UPLOAD reaches SkyPilot through the project config the CLI sends with every request.
    config = request["override_skypilot_config"] or {}
    assert config.get("aws", {}).get("remote_identity") == "NO_UPLOAD", config


def _tasks_after_table(stdout: str, clusters: list[str]) -> dict[str, Any]:
    """plan prints each task after a `# <cluster>` line; each must be valid YAML on its own."""
    lines = stdout.splitlines()
    starts = {name: lines.index(f"# {name}") for name in clusters}
    bounds = sorted(starts.values()) + [len(lines)]
    tasks = {}
    for name, start in starts.items():
        end = bounds[bounds.index(start) + 1]
        tasks[name] = yaml.safe_load("\n".join(lines[start + 1:end]))
    return tasks


@pytest.fixture(scope="module")
def three(world: SkyWorld) -> Path:
    return world.fleet_file("three-regions", THREE_REGIONS)


def test_01_inventory_print_starts_the_api_server_and_prints_only_yaml(world: SkyWorld, three: Path) -> None:
    assert api_server_processes(world.port) == [], "seeding must not start the server: the CLI does"
    result = world.deploy(three, "inventory", "--print")
    assert result.returncode == 0, _ok(result)
    assert api_server_processes(world.port), "the CLI's first SDK call starts SkyPilot's local API server"
    # Nothing SkyPilot printed while starting its server (or anything else) may reach stdout.
    assert result.stdout == world.inventory.read_text()
    data = yaml.safe_load(result.stdout)
    group = data["all"]["children"][f"fleet_{world.name}"]
    hosts = {name: values for region in group["children"].values() for name, values in (region["hosts"] or {}).items()}
    expected = {world.host(b): (cluster, b) for cluster in (world.cluster("us-east-1"), world.cluster("us-east-2"))
                for b in world.boxes[cluster]}
    assert sorted(hosts) == sorted(expected)
    for name, (cluster, box) in expected.items():
        assert hosts[name]["ansible_host"] == "127.0.0.1" and hosts[name]["ansible_port"] == box.port
        assert hosts[name]["ansible_user"] == "ubuntu", "on AWS the user comes from the record's credentials"
        assert hosts[name]["ansible_ssh_private_key_file"] == world.private_key
        assert hosts[name]["fleet_cluster"] == cluster and hosts[name]["fleet_instance_id"] == box.instance_id
        assert hosts[name]["fleet_spot"] is True and hosts[name]["fleet_zone"].endswith("a")
    assert f"{world.local_name}-orchestrator" in group["vars"]["bacalhau_orchestrator_endpoint"]

    # The seeded records, as SkyPilot itself serves them.
    names = [world.cluster(r) for r in THREE_REGIONS] + [world.cluster("us-east-1", world.other)]
    records = {r["name"]: r for r in world.sky("records", names)}
    assert {n: r["status"] for n, r in records.items()} == {
        world.cluster("us-east-1"): "UP", world.cluster("us-east-2"): "INIT",
        world.cluster("us-east-1", world.other): "UP"}
    for record in records.values():
        assert record["handle_ssh_user"] is None and record["credentials"]["ssh_user"] == "ubuntu", record


def test_02_status_counts_nodes_per_cluster(world: SkyWorld, three: Path) -> None:
    result = world.deploy(three, "status")
    assert result.returncode == 1, _ok(result)  # us-east-2 and us-west-2 are short
    clusters = table_rows(result.stdout, f"Fleet '{world.name}'")
    assert {name: row[1:3] for name, row in clusters.items()} == {
        world.cluster("us-east-1"): ["ok", "2/2"], world.cluster("us-east-2"): ["changed", "1/2"],
        world.cluster("us-west-2"): ["failed", "0/1"]}
    assert clusters[world.cluster("us-east-1")][3] == "$0.0250/h"  # 2 x the catalog's 0.0125 spot price
    nodes = table_rows(result.stdout, "Nodes")
    boxes = {world.host(b): b for c in (world.cluster("us-east-1"), world.cluster("us-east-2"))
             for b in world.boxes[c]}
    assert sorted(nodes) == sorted(boxes)
    for name, box in boxes.items():
        assert nodes[name][3:6] == [f"127.0.0.1:{box.port}", box.instance_id, "spot"], nodes[name]


def test_03_plan_shows_what_up_will_do_and_each_task_as_yaml(world: SkyWorld, three: Path) -> None:
    result = world.deploy(three, "plan")
    assert result.returncode == 0, _ok(result)
    actions = {name: row[1] for name, row in table_rows(result.stdout, "Plan for fleet").items()}
    assert actions[world.cluster("us-east-1")] == "nothing to do"
    assert actions[world.cluster("us-east-2")].startswith("heal: ")
    assert actions[world.cluster("us-west-2")] == "launch 1 node(s)"
    tasks = _tasks_after_table(result.stdout, [world.cluster(r) for r in THREE_REGIONS])
    for region, count in THREE_REGIONS.items():
        task = tasks[world.cluster(region)]
        assert task["name"] == world.cluster(region) and task["num_nodes"] == count, task
        assert task["resources"]["infra"] == f"aws/{region}" and task["resources"]["use_spot"] is True, task

    resized = world.deploy(world.fleet_file("resize", {"us-east-1": 3}), "plan")
    assert resized.returncode == 0, _ok(resized)
    assert table_rows(resized.stdout, "Plan for fleet")[world.cluster("us-east-1")][1] == "resize 2 -> 3 node(s)"
    assert _tasks_after_table(resized.stdout, [world.cluster("us-east-1")])[world.cluster("us-east-1")][
        "num_nodes"] == 3
    assert world.requests("sky.launch") == [], "plan reads SkyPilot's state; it never launches"


def test_04_up_on_three_regions_attempts_two_launches_and_still_configures_the_survivors(
        world: SkyWorld, three: Path) -> None:
    result = world.deploy(three, "up")
    assert result.returncode == 1, _ok(result)
    clusters = table_rows(result.stdout, "Clusters")
    assert clusters[world.cluster("us-east-1")][1] == "unchanged"
    heal, launch = clusters[world.cluster("us-east-2")], clusters[world.cluster("us-west-2")]
    assert heal[1] == "failed" and heal[3].startswith(f"{CREDENTIALS_HINT}: "), heal
    assert launch[1] == "failed" and launch[3].startswith(f"{NO_ACCESS_HINT}: "), launch
    # Then SkyPilot's own first paragraph, as one plain line (the table never wraps off a terminal).
    assert "AWS credentials are not set" in heal[3] and "Cloud access is not set up" in launch[3]
    assert "\x1b[" not in heal[3] + launch[3]
    assert "Traceback" not in result.stdout + result.stderr

    launches = _launches(world)
    assert sorted(launches) == sorted([world.cluster("us-east-2"), world.cluster("us-west-2")])
    (healed,) = launches[world.cluster("us-east-2")]
    (created,) = launches[world.cluster("us-west-2")]
    _assert_credentials_stop(healed, "CloudUserIdentityError")
    _assert_credentials_stop(created, "NoCloudAccessError")
    assert healed["resize"] is False and created["resize"] is False

    east1, (survivor,) = world.boxes[world.cluster("us-east-1")], world.boxes[world.cluster("us-east-2")]
    configured = table_rows(result.stdout, "Configure summary")
    # Nothing was configured before: the INIT cluster's survivor is configured like the UP cluster's nodes.
    assert {n: row[1] for n, row in configured.items()} == {world.host(b): "changed" for b in [*east1, survivor]}
    assert all(world.stamp(b) for b in [*east1, survivor])
    health = table_rows(result.stdout, "Fleet health")
    assert {n: row[1] for n, row in health.items()} == {world.host(b): "healthy" for b in [*east1, survivor]}


def test_05_up_with_every_cluster_up_and_complete_launches_nothing_and_configures_what_is_not_converged(
        world: SkyWorld) -> None:
    complete = world.fleet_file("complete", {"us-east-1": 2})
    adopted, converged = world.boxes[world.cluster("us-east-1")]
    world.remove_stamp(adopted)  # as if configured by an earlier run that was cut short
    launches_before = [r["request_id"] for r in world.requests("sky.launch")]
    result = world.deploy(complete, "up", "--skip-health")
    assert result.returncode == 0, _ok(result)
    assert table_rows(result.stdout, "Clusters")[world.cluster("us-east-1")][1] == "unchanged"
    assert [r["request_id"] for r in world.requests("sky.launch")] == launches_before, "no launch, heal or resize"
    configured = table_rows(result.stdout, "Configure summary")
    assert sorted(configured) == sorted([world.host(adopted), world.host(converged)])
    assert configured[world.host(converged)][1] == "converged"
    # The unstamped node ran every role again (idempotent: nothing or little to change) and is stamped anew.
    ran = configured[world.host(adopted)]
    assert ran[1] in ("ok", "changed") and int(ran[2]) > int(configured[world.host(converged)][2]), ran
    assert world.stamp(adopted)


def test_06_a_count_change_on_an_up_cluster_relaunches_with_resize(world: SkyWorld) -> None:
    before = len(_launches(world).get(world.cluster("us-east-1"), []))
    result = world.deploy(world.fleet_file("resize", {"us-east-1": 3}), "up", "--skip-health")
    assert result.returncode == 1, _ok(result)
    row = table_rows(result.stdout, "Clusters")[world.cluster("us-east-1")]
    assert row[1] == "failed" and row[3].startswith(f"{CREDENTIALS_HINT}: "), row
    requests = _launches(world)[world.cluster("us-east-1")]
    assert len(requests) == before + 1
    # Without resize=True SkyPilot's fit check would refuse 3 nodes on a 2-node cluster (ResourcesMismatchError).
    assert requests[-1]["resize"] is True
    (task,) = [doc for doc in yaml.safe_load_all(requests[-1]["task"]) if doc and "num_nodes" in doc]
    assert task["num_nodes"] == 3 and task["name"] == world.cluster("us-east-1"), task
    _assert_credentials_stop(requests[-1], "CloudUserIdentityError")
    configured = table_rows(result.stdout, "Configure summary")
    assert {row[1] for row in configured.values()} == {"converged"}, configured


def test_07_configure_health_and_ssh_reach_every_node(world: SkyWorld, three: Path) -> None:
    nodes = [*world.boxes[world.cluster("us-east-1")], *world.boxes[world.cluster("us-east-2")]]
    configure = world.deploy(three, "configure")
    assert configure.returncode == 0, _ok(configure)
    rows = table_rows(configure.stdout, "Configure summary")
    assert sorted(rows) == sorted(world.host(b) for b in nodes)
    assert all(row[1] == "ok" and row[3] == "0" for row in rows.values()), rows  # a no-op

    health = world.deploy(three, "health")
    assert health.returncode == 0, _ok(health)
    assert {n: row[1] for n, row in table_rows(health.stdout, "Fleet health").items()} == {
        world.host(b): "healthy" for b in nodes}

    survivor = world.boxes[world.cluster("us-east-2")][0]
    ssh = world.deploy(three, "ssh", survivor.instance_id, "id -un && cat /etc/hostname")
    assert ssh.returncode == 0, _ok(ssh)
    hostname = world.docker_hostname(survivor)
    assert ssh.stdout.split() == ["ubuntu", hostname]


def test_08_down_offline_fails_per_cluster_and_leaves_other_fleets_alone(world: SkyWorld, three: Path) -> None:
    result = world.deploy(three, "down", "--yes")
    assert result.returncode == 1, _ok(result)
    clusters = table_rows(result.stdout, "Clusters")
    for region in ("us-east-1", "us-east-2"):
        row = clusters[world.cluster(region)]
        assert row[1] == "failed" and row[3].startswith(f"{CREDENTIALS_HINT}: "), row
    assert clusters[world.cluster("us-west-2")][1] == "unchanged"  # no record: nothing to remove
    assert not any(world.other in name for name in clusters)

    downs = world.requests("sky.down")
    assert sorted(r["cluster_name"] for r in downs) == sorted([world.cluster("us-east-1"), world.cluster("us-east-2")])
    for request in downs:
        assert not request["purge"], request  # purge would retry AWS for minutes and drop the record regardless
        _assert_credentials_stop(request, "CloudUserIdentityError")

    names = [world.cluster(r) for r in THREE_REGIONS] + [world.cluster("us-east-1", world.other)]
    records = {r["name"]: r for r in world.sky("records", names)}
    assert {n: (r["status"], r["nodes"]) for n, r in records.items()} == {
        world.cluster("us-east-1"): ("UP", 2), world.cluster("us-east-2"): ("INIT", 2),
        world.cluster("us-east-1", world.other): ("UP", 1)}


def test_09_every_sdk_call_the_provider_makes_ran_against_the_real_server(world: SkyWorld) -> None:
    statuses = world.requests("sky.status")
    assert {bool(r["include_credentials"]) for r in statuses} == {True, False}
    assert all(r["status"].endswith("SUCCEEDED") for r in statuses), statuses
    assert {r["resize"] for r in world.requests("sky.launch")} == {True, False}
    assert world.requests("sky.down")
    # sky.get: every failure above reached the CLI as the real exception class, which only sky.get raises.


def test_10_no_secret_reached_skypilot_or_the_output(world: SkyWorld) -> None:
    token = world.token_file.read_text().strip()
    assert not [out for out in world.outputs if token in out]
    # SkyPilot keeps task envs, request bodies and logs in plain files: the token must be in none of them.
    stored = [p for p in (world.home / ".sky").rglob("*") if p.is_file() and token.encode() in p.read_bytes()]
    assert stored == []
