"""The CLI against the real SkyPilot 0.14.1 SDK and local API server, with local container nodes (no AWS).

Real: SkyPilot's API server (the CLI's first call starts it), its state DB, request handling, task and config
validation and its AWS credentials check; the nodes (local-provider containers: systemd, sshd, dockerd), SSH with
SkyPilot's own key, Ansible, the health check. Seeded (conftest.py, with SkyPilot's own state code): the records
of three clusters — `<fleet>-us-east-1` UP with 2 nodes, `<fleet>-us-east-2` INIT (launched with 2, one survivor),
`<other>-us-east-1` of another fleet — and a small AWS catalog. `<fleet>-us-west-2` has no record.

Offline, every `sky.launch`/`sky.down` the CLI makes must get past SkyPilot's validation and stop at the AWS
credentials check; the server's own request list shows which requests ran and what they raised.

The tests run in order on one fleet (module-scoped): inventory → status → health (nothing configured yet) → plan →
up (three regions) → up (complete) → up (resize) → configure / health / ssh → down → SDK coverage → secrets.
They read the CLI's `--output json` (stdout: one JSON document, progress on stderr); only what is about human
output reads table-mode stdout (the tasks `plan` prints, `inventory --print`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from sky_world import (
    AZURE_REGION,
    CLOSED_PORT,
    GCP_REGION,
    REPO,
    SkyWorld,
    api_server_processes,
    free_port,
    processes_with_home,
    sky_environment,
    stop_api_server,
    write_catalog,
)

from tests.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.e2e

CREDENTIALS_HINT = "AWS credentials are missing or unusable (run: sky check aws)"
NO_ACCESS_HINT = "no usable cloud access (run: sky check aws)"
# What SkyPilot raises when a task or config is wrong: none of these may be why a request failed.
VALIDATION_ERRORS = {"InvalidSkyPilotConfigError", "ResourcesMismatchError", "ValueError", "InvalidTaskError",
                     "ResourcesUnavailableError", "ConnectionError", "NotSupportedError"}
THREE_REGIONS = {"us-east-1": 2, "us-east-2": 2, "us-west-2": 1}


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout[-6000:]}\n--- stderr\n{result.stderr[-4000:]}"


def _json(result: subprocess.CompletedProcess[str]) -> Any:
    """stdout of a `-o json` run: exactly one JSON document, nothing else."""
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError as exc:
        pytest.fail(f"stdout is not one JSON document ({exc})\n{_ok(result)}")


def _deploy_json(world: SkyWorld, fleet_file: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    """The command with `-o json` after it; the run and its JSON document."""
    result = world.deploy(fleet_file, *args, "-o", "json")
    return result, _json(result)


def _by(rows: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    found = {row[key]: row for row in rows}
    assert len(found) == len(rows), f"duplicate {key}: {rows}"
    return found


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
    result = world.deploy(three, "--output", "json", "status")  # the option before the command
    assert result.returncode == 1, _ok(result)  # us-east-2 and us-west-2 are short
    data = _json(result)
    assert data["fleet"] == world.name and data["ok"] is False, data
    clusters = _by(data["clusters"], "cluster")
    assert {name: (c["region"], c["up"], c["wanted"], c["ok"]) for name, c in clusters.items()} == {
        world.cluster("us-east-1"): ("us-east-1", 2, 2, True), world.cluster("us-east-2"): ("us-east-2", 1, 2, False),
        world.cluster("us-west-2"): ("us-west-2", 0, 1, False)}
    assert clusters[world.cluster("us-east-1")]["price"] == "$0.0250/h"  # 2 x the catalog's 0.0125 spot price
    nodes = _by(data["nodes"], "node")
    boxes = {world.host(b): (region, b) for region in ("us-east-1", "us-east-2")
             for b in world.boxes[world.cluster(region)]}
    assert sorted(nodes) == sorted(boxes)
    for name, (region, box) in boxes.items():
        assert nodes[name] == {"node": name, "instance_id": box.instance_id, "cluster": world.cluster(region),
                               "region": region, "zone": f"{region}a", "address": f"127.0.0.1:{box.port}",
                               "market": "spot", "orchestrator": None,  # no orchestrator.api here
                               "interruption": "", "cloud": "aws"}, nodes[name]  # no watcher has seen a spot notice
    # SkyPilot's own cost report: the seeded launches, this fleet's clusters only (not the other fleet's).
    cost = data["cost"]
    assert cost["basis"] == "estimate at list prices (SkyPilot's cost report)" and cost["error"] == "", cost
    assert {c["cluster"]: c["nodes"] for c in cost["clusters"]} == {
        world.cluster("us-east-1"): 2, world.cluster("us-east-2"): 2}, cost


def test_02b_cost_without_aws_credentials_is_unknown_not_zero(world: SkyWorld, three: Path) -> None:
    """Found at this boundary: SkyPilot's cost report prices an AWS cluster through its catalog narrowed to the
    account's zone names, which needs AWS credentials; without them it logs a warning and writes total_cost 0.0.
    A cluster up for a while never cost nothing, so it is `unknown`, and so is the total."""
    result = world.deploy(three, "cost", "--days", "7", "-o", "json")
    assert result.returncode == 1, _ok(result)
    data = _json(result)
    assert data["days"] == 7 and data["ok"] is False and data["total"] is None and data["error"] == "", data
    east1, east2 = world.cluster("us-east-1"), world.cluster("us-east-2")
    assert {c["cluster"]: (c["nodes"], c["cost"]) for c in data["clusters"]} == {east1: (2, None), east2: (2, None)}
    assert all(c["up_seconds"] > 0 and c["launched_at"] > 0 for c in data["clusters"]), data
    assert data["unknown"].startswith(f"{east1}, {east2}: not priced by SkyPilot") and "sky check aws" in data["unknown"]
    table = world.deploy(three, "cost")
    assert table.returncode == 1 and "cost so far: unknown (" in table.stdout, _ok(table)


def test_03_health_before_any_configure_reports_every_node_as_not_configured(world: SkyWorld, three: Path) -> None:
    result, data = _deploy_json(world, three, "health")
    assert result.returncode == 1, _ok(result)
    assert data["ok"] is False, data
    nodes = [*world.boxes[world.cluster("us-east-1")], *world.boxes[world.cluster("us-east-2")]]
    # The seeded nodes never ran site.yml: no health script, so the node's health playbook says not configured.
    assert {n["node"]: n["health"] for n in data["nodes"]} == {world.host(b): "not configured yet" for b in nodes}, _ok(result)
    assert all(n["failing"] == [] for n in data["nodes"]), data
    assert not any(world.stamp(b) for b in nodes), "a health check configures nothing"


def test_04_plan_shows_what_up_will_do_and_each_task_as_yaml(world: SkyWorld, three: Path) -> None:
    names = [world.cluster(r) for r in THREE_REGIONS]
    planned, data = _deploy_json(world, three, "plan")
    assert planned.returncode == 0, _ok(planned)
    assert data["fleet"] == world.name and data["provider"] == "skypilot", data
    clusters = _by(data["clusters"], "cluster")
    assert sorted(clusters) == sorted(names)
    assert clusters[world.cluster("us-east-1")]["action"] == "nothing to do"
    assert clusters[world.cluster("us-east-2")]["action"].startswith("heal: ")
    assert clusters[world.cluster("us-west-2")]["action"] == "launch 1 node(s)"
    assert clusters[world.cluster("us-east-1")]["price"] == "$0.0250/h"
    # What a person reads: each task after a `# <cluster>` line, valid YAML on its own: the JSON's task.
    shown = world.deploy(three, "plan")
    assert shown.returncode == 0, _ok(shown)
    tasks = _tasks_after_table(shown.stdout, names)
    for region, count in THREE_REGIONS.items():
        task = tasks[world.cluster(region)]
        assert task["name"] == world.cluster(region) and task["num_nodes"] == count, task
        assert task["resources"]["infra"] == f"aws/{region}" and task["resources"]["use_spot"] is True, task
        # The JSON's task, as printed (table mode strips its trailing newline).
        assert f"# {world.cluster(region)}\n{clusters[world.cluster(region)]['task'].rstrip()}\n" in shown.stdout

    resized, data = _deploy_json(world, world.fleet_file("resize", {"us-east-1": 3}), "plan")
    assert resized.returncode == 0, _ok(resized)
    (cluster,) = data["clusters"]
    assert cluster["cluster"] == world.cluster("us-east-1") and cluster["action"] == "resize 2 -> 3 node(s)", cluster
    assert yaml.safe_load(cluster["task"])["num_nodes"] == 3
    assert world.requests("sky.launch") == [], "plan reads SkyPilot's state; it never launches"


def test_05_up_on_three_regions_attempts_two_launches_and_still_configures_the_survivors(
        world: SkyWorld, three: Path) -> None:
    result, data = _deploy_json(world, three, "up")
    assert result.returncode == 1, _ok(result)
    assert data["ok"] is False and data["inventory"] == str(world.inventory), data
    clusters = _by(data["clusters"], "cluster")
    assert clusters[world.cluster("us-east-1")]["action"] == "unchanged"
    heal, launch = clusters[world.cluster("us-east-2")], clusters[world.cluster("us-west-2")]
    assert heal["action"] == "failed" and heal["ok"] is False, heal
    assert launch["action"] == "failed" and launch["ok"] is False, launch
    assert heal["error"].startswith(f"{CREDENTIALS_HINT}: "), heal
    assert launch["error"].startswith(f"{NO_ACCESS_HINT}: "), launch
    # Then SkyPilot's own first paragraph, as one plain line.
    assert "AWS credentials are not set" in heal["error"] and "Cloud access is not set up" in launch["error"]
    assert "\x1b[" not in heal["error"] + launch["error"] and "\n" not in heal["error"] + launch["error"]
    assert "Traceback" not in result.stdout + result.stderr

    launches = _launches(world)
    assert sorted(launches) == sorted([world.cluster("us-east-2"), world.cluster("us-west-2")])
    (healed,) = launches[world.cluster("us-east-2")]
    (created,) = launches[world.cluster("us-west-2")]
    _assert_credentials_stop(healed, "CloudUserIdentityError")
    _assert_credentials_stop(created, "NoCloudAccessError")
    assert healed["resize"] is False and created["resize"] is False

    east1, (survivor,) = world.boxes[world.cluster("us-east-1")], world.boxes[world.cluster("us-east-2")]
    # Nothing was configured before: the INIT cluster's survivor is configured like the UP cluster's nodes.
    assert data["configure"]["ok"] is True, data["configure"]
    assert {n["node"]: n["state"] for n in data["configure"]["nodes"]} == {
        world.host(b): "changed" for b in [*east1, survivor]}
    assert all(world.stamp(b) for b in [*east1, survivor])
    assert data["health"]["ok"] is True, data["health"]
    assert {n["node"]: n["health"] for n in data["health"]["nodes"]} == {
        world.host(b): "healthy" for b in [*east1, survivor]}


def test_06_up_with_every_cluster_up_and_complete_launches_nothing_and_configures_what_is_not_converged(
        world: SkyWorld) -> None:
    complete = world.fleet_file("complete", {"us-east-1": 2})
    adopted, converged = world.boxes[world.cluster("us-east-1")]
    world.remove_stamp(adopted)  # as if configured by an earlier run that was cut short
    launches_before = [r["request_id"] for r in world.requests("sky.launch")]
    result, data = _deploy_json(world, complete, "up", "--skip-health")
    assert result.returncode == 0, _ok(result)
    assert data["ok"] is True and data["health"] is None, data
    assert [(c["cluster"], c["action"]) for c in data["clusters"]] == [(world.cluster("us-east-1"), "unchanged")]
    assert [r["request_id"] for r in world.requests("sky.launch")] == launches_before, "no launch, heal or resize"
    configured = _by(data["configure"]["nodes"], "node")
    assert sorted(configured) == sorted([world.host(adopted), world.host(converged)])
    assert configured[world.host(converged)]["state"] == "converged"
    # The unstamped node ran every role again (idempotent: nothing or little to change) and is stamped anew.
    ran = configured[world.host(adopted)]
    assert ran["state"] in ("ok", "changed") and ran["ok"] > configured[world.host(converged)]["ok"], ran
    assert world.stamp(adopted)


def test_07_a_count_change_on_an_up_cluster_relaunches_with_resize(world: SkyWorld) -> None:
    before = len(_launches(world).get(world.cluster("us-east-1"), []))
    result, data = _deploy_json(world, world.fleet_file("resize", {"us-east-1": 3}), "up", "--skip-health")
    assert result.returncode == 1, _ok(result)
    (row,) = data["clusters"]
    assert row["cluster"] == world.cluster("us-east-1") and row["action"] == "failed", row
    assert row["error"].startswith(f"{CREDENTIALS_HINT}: "), row
    requests = _launches(world)[world.cluster("us-east-1")]
    assert len(requests) == before + 1
    # Without resize=True SkyPilot's fit check would refuse 3 nodes on a 2-node cluster (ResourcesMismatchError).
    assert requests[-1]["resize"] is True
    (task,) = [doc for doc in yaml.safe_load_all(requests[-1]["task"]) if doc and "num_nodes" in doc]
    assert task["num_nodes"] == 3 and task["name"] == world.cluster("us-east-1"), task
    _assert_credentials_stop(requests[-1], "CloudUserIdentityError")
    assert {n["state"] for n in data["configure"]["nodes"]} == {"converged"}, data["configure"]


def test_08_configure_health_and_ssh_reach_every_node(world: SkyWorld, three: Path) -> None:
    nodes = [*world.boxes[world.cluster("us-east-1")], *world.boxes[world.cluster("us-east-2")]]
    configure, data = _deploy_json(world, three, "configure")
    assert configure.returncode == 0, _ok(configure)
    assert data["ok"] is True and data["check"] is False and data["drifted"] == [], data
    rows = _by(data["nodes"], "node")
    assert sorted(rows) == sorted(world.host(b) for b in nodes)
    # Every node was stamped by an earlier up: the stamp check alone ends each run.
    assert all(row["state"] == "converged" and row["changed"] == 0 for row in rows.values()), rows

    health, data = _deploy_json(world, three, "health")
    assert health.returncode == 0, _ok(health)
    assert data["ok"] is True, data
    assert {n["node"]: n["health"] for n in data["nodes"]} == {world.host(b): "healthy" for b in nodes}

    survivor = world.boxes[world.cluster("us-east-2")][0]
    ssh = world.deploy(three, "ssh", survivor.instance_id, "id -un && cat /etc/hostname")
    assert ssh.returncode == 0, _ok(ssh)
    hostname = world.docker_hostname(survivor)
    assert ssh.stdout.split() == ["ubuntu", hostname]


def test_08b_watch_once_heals_the_short_cluster_with_one_launch_and_alerts_once(world: SkyWorld) -> None:
    """The INIT cluster (a worker missing): one launch that ends at the credential check, one heal_failed alert;
    a second --once right after is backing off: no launch, no alert."""
    fleet_file = world.fleet_file("watch", {"us-east-1": 2, "us-east-2": 2})
    cluster = world.cluster("us-east-2")
    with WebhookReceiver() as hook:
        fleet_file.write_text(fleet_file.read_text() + f"watch: {{webhook_url: '{hook.url}'}}\n")
        before = len(_launches(world).get(cluster, []))
        first = world.deploy(fleet_file, "watch", "--once")
        assert first.returncode == 1, _ok(first)  # the region could not be healed: not all well
        launches = _launches(world)[cluster]
        assert len(launches) == before + 1, launches
        _assert_credentials_stop(launches[-1], "CloudUserIdentityError")
        assert launches[-1]["resize"] is False
        failed = hook.wait_for("heal_failed", "us-east-2")
        assert failed["text"].startswith(f"[fleet {world.name}] heal_failed: us-east-2: {CREDENTIALS_HINT}"), failed
        assert "next try in 3600 s" in failed["text"], failed  # credentials: straight to the longest backoff
        assert [k for k in hook.kinds() if k[0] in ("heal_failed", "node_lost")] == [("heal_failed", "us-east-2")]
        sent = len(hook.alerts)

        second = world.deploy(fleet_file, "watch", "--once")
        assert second.returncode == 1, _ok(second)
        assert len(_launches(world)[cluster]) == before + 1, "a region backing off is not launched again"
        assert "us-east-2: backing off for" in second.stdout, _ok(second)
        time.sleep(1)
        assert len(hook.alerts) == sent, hook.kinds()[sent:]

    events, data = _deploy_json(world, fleet_file, "events")
    assert events.returncode == 0, _ok(events)
    assert [e["subject"] for e in data if e["kind"] == "heal_failed"] == ["us-east-2"]


def test_09_down_offline_fails_per_cluster_and_leaves_other_fleets_alone(world: SkyWorld, three: Path) -> None:
    result, data = _deploy_json(world, three, "down", "--yes")
    assert result.returncode == 1, _ok(result)
    assert data["ok"] is False, data
    clusters = _by(data["clusters"], "cluster")
    for region in ("us-east-1", "us-east-2"):
        row = clusters[world.cluster(region)]
        assert row["action"] == "failed" and row["error"].startswith(f"{CREDENTIALS_HINT}: "), row
    assert clusters[world.cluster("us-west-2")]["action"] == "unchanged"  # no record: nothing to remove
    assert not any(world.other in name for name in clusters)
    assert world.inventory.is_file(), "a failed down keeps the inventory"

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


def test_10_every_sdk_call_the_provider_makes_ran_against_the_real_server(world: SkyWorld) -> None:
    statuses = world.requests("sky.status")
    assert {bool(r["include_credentials"]) for r in statuses} == {True, False}
    assert all(r["status"].endswith("SUCCEEDED") for r in statuses), statuses
    assert {r["resize"] for r in world.requests("sky.launch")} == {True, False}
    assert world.requests("sky.down")
    # sky.get: every failure above reached the CLI as the real exception class, which only sky.get raises.


def test_11_no_secret_reached_skypilot_or_the_output(world: SkyWorld) -> None:
    token = world.token_file.read_text().strip()
    assert not [out for out in world.outputs if token in out]
    # SkyPilot keeps task envs, request bodies and logs in plain files: the token must be in none of them.
    stored = [p for p in (world.home / ".sky").rglob("*") if p.is_file() and token.encode() in p.read_bytes()]
    assert stored == []


def test_12_gcp_and_azure_clusters_inventory_their_own_user_and_stop_at_their_own_credential_check(
        world: SkyWorld) -> None:
    """The seeded GCP and Azure records (INIT, one survivor each, at a closed port): the inventory carries the user
    SkyPilot recorded for each cloud, and `up` gets past every config and validation step to that cloud's own
    credential check, as the AWS clusters do."""
    clouds = world.fleet_file("clouds", {GCP_REGION: 2, AZURE_REGION: 2}, {GCP_REGION: "gcp", AZURE_REGION: "azure"})
    listed = world.deploy(clouds, "inventory", "--print")
    assert listed.returncode == 0, _ok(listed)
    group = yaml.safe_load(listed.stdout)["all"]["children"][f"fleet_{world.name}"]
    hosts = {name: values for region in group["children"].values() for name, values in (region["hosts"] or {}).items()}
    expected = {GCP_REGION: ("gcpuser", "gcp", f"{GCP_REGION}-a"), AZURE_REGION: ("azureuser", "azure", None)}
    assert sorted(hosts) == sorted(f"{world.name}-{world.cluster(r)}-2ea4-head" for r in expected)
    for region, (user, cloud, zone) in expected.items():
        values = hosts[f"{world.name}-{world.cluster(region)}-2ea4-head"]
        assert (values["ansible_user"], values["fleet_cloud"], values["fleet_zone"]) == (user, cloud, zone), values
        assert values["ansible_host"] == "127.0.0.1" and values["ansible_port"] == CLOSED_PORT
        assert values["ansible_ssh_private_key_file"] == world.private_key and values["fleet_region"] == region
    records = {r["name"]: r for r in world.sky("records", [world.cluster(r) for r in expected])}
    assert {n: (r["cloud"], r["credentials"]["ssh_user"]) for n, r in records.items()} == {
        world.cluster(GCP_REGION): ("GCP", "gcpuser"), world.cluster(AZURE_REGION): ("Azure", "azureuser")}

    before = {r["request_id"] for r in world.requests("sky.launch")}
    result, data = _deploy_json(world, clouds, "up", "--skip-health")
    assert result.returncode == 1, _ok(result)
    outcomes = _by(data["clusters"], "cluster")
    assert outcomes[world.cluster(GCP_REGION)]["error"].startswith(
        "GCP credentials are missing or unusable (run: sky check gcp): "), outcomes
    assert outcomes[world.cluster(AZURE_REGION)]["error"].startswith(
        "Azure credentials are missing or unusable (run: sky check azure): "), outcomes
    launches = {r["cluster_name"]: r for r in world.requests("sky.launch") if r["request_id"] not in before}
    assert sorted(launches) == sorted(world.cluster(r) for r in expected)
    for name, request in launches.items():
        _assert_credentials_stop(request, "CloudUserIdentityError")
        infra = request["task"]
        assert ("gcp/" if name.endswith(GCP_REGION) else "azure/") in json.dumps(infra), infra
    # The survivors were tried and are unreachable (nothing listens there): named per node, never a crash.
    assert data["configure"]["ok"] is False
    assert {n["state"] for n in data["configure"]["nodes"]} == {"unreachable"}, data["configure"]


def test_13_two_controllers_on_a_teams_api_server_see_one_fleet(world: SkyWorld) -> None:
    """A second API server on loopback, as a team would run one: its own HOME (state DB, keys) and port. Two
    controllers with HOMEs of their own name it in the fleet file (skypilot.api_server). The fleet's cluster was
    launched by the server's user, not theirs: both must still see it, and reach its nodes with the key the server
    sends in the status record (its path is the server's)."""
    team_home, team_port = world.work / "team-home", free_port()
    team_home.mkdir()
    write_catalog(team_home)
    team_env = sky_environment(team_home, world.work / "team-state", team_port)
    team = f"{world.name}t"
    started = subprocess.run([str(REPO / ".venv" / "bin" / "sky"), "api", "start", "--host", "127.0.0.1", "--port",
                              str(team_port)], env=team_env, capture_output=True, text=True, timeout=300,
                             stdin=subprocess.DEVNULL)
    controllers = [world.work / f"operator-{who}" for who in "ab"]
    try:
        assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-3000:]
        assert api_server_processes(team_port), "the team's server runs"
        east1 = world.boxes[world.cluster("us-east-1")]
        seeded = subprocess.run(
            [sys.executable, str(Path(__file__).with_name("sky_side.py")), "seed", json.dumps({"clusters": [{
                "name": f"{team}-us-east-1", "region": "us-east-1", "zone": "us-east-1a", "launched_nodes": 2,
                "ready": True, "nodes": [{"instance_id": b.instance_id, "internal_ip": b.internal_ip,
                                          "port": b.port} for b in east1]}]})],
            cwd=world.work, env=team_env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        assert seeded.returncode == 0, seeded.stderr[-3000:]
        keys = json.loads(seeded.stdout.strip().splitlines()[-1])
        for box in east1:  # the nodes accept the team server's key, as SkyPilot-made VMs would
            subprocess.run(["docker", "exec", "-i", box.container, "sh", "-c",
                            "cat >> /home/ubuntu/.ssh/authorized_keys"],
                           # SkyPilot's public key file has no final newline: start a line of our own.
                           input="\n" + Path(keys["public_key"]).read_text() + "\n", text=True, check=True,
                           timeout=60)
        fleet_file = world.work / "team.yaml"
        fleet_file.write_text(world.fleet_file("team-base", {"us-east-1": 2}).read_text()
                              .replace(f"name: {world.name}\n", f"name: {team}\n")
                              + f"skypilot: {{api_server: 'http://127.0.0.1:{team_port}'}}\n")
        seen = []
        for home in controllers:
            # Two operators, not one: each client has its own SkyPilot user (~/.sky/user_hash, sent with every
            # request); the cluster belongs to the server's user.
            (home / ".sky").mkdir(parents=True)
            (home / ".sky" / "user_hash").write_text(f"operator{home.name[-1]}0000")
            env = sky_environment(home, home / "state", free_port())
            done = subprocess.run([sys.executable, str(REPO / "deploy.py"), "-f", str(fleet_file), "status", "-o",
                                   "json"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
                                  stdin=subprocess.DEVNULL)
            assert done.returncode == 0, _ok(done)
            status = json.loads(done.stdout)
            seen.append(sorted(n["instance_id"] for n in status["nodes"]))
            assert [(c["cluster"], c["up"], c["wanted"]) for c in status["clusters"]] == [(f"{team}-us-east-1", 2, 2)]
            # SkyPilot's cost report is not per user: every operator reads the fleet's cost.
            assert [c["cluster"] for c in status["cost"]["clusters"]] == [f"{team}-us-east-1"], status["cost"]
            inventory = yaml.safe_load((REPO / "inventory" / f"{team}.yml").read_text())
            hosts = inventory["all"]["children"][f"fleet_{team}"]["children"][f"{team}_us_east_1"]["hosts"]
            (key,) = {h["ansible_ssh_private_key_file"] for h in hosts.values()}
            assert Path(key).parent == home / "state" / team / "skypilot-keys", key  # the controller's own copy
            assert Path(key).read_text() == Path(keys["private_key"]).expanduser().read_text()
            ran = subprocess.run([sys.executable, str(REPO / "deploy.py"), "-f", str(fleet_file), "-o", "json",
                                  "exec", "all", "hostname"], cwd=REPO, env=env, capture_output=True, text=True,
                                 timeout=600, stdin=subprocess.DEVNULL)
            assert ran.returncode == 0, _ok(ran)
            assert all(n["ok"] for n in json.loads(ran.stdout)["nodes"]), ran.stdout
            assert not api_server_processes(int(env["SKYPILOT_API_SERVER_LOCAL_PORT"])), "no local server started"
        assert seen[0] == seen[1] == sorted(b.instance_id for b in east1)
    finally:
        stop_api_server(team_port, team_home)
        for home in controllers:
            for pid in processes_with_home(home):
                subprocess.run(["kill", "-9", str(pid)], capture_output=True)
        (REPO / "inventory" / f"{team}.yml").unlink(missing_ok=True)
