"""The canary on the shared local fleet (after test_local_fleet.py): one job per node through the orchestrator's
job API, run by each node's Bacalhau (the compute double) on the node's own Docker engine.

Every node passes; a node whose sensor is stopped (and whose data has gone stale) and a node whose data
directory is missing each fail with their reason, the others still pass; putting them back makes them pass.
"""

from __future__ import annotations

import time

import pytest
from local_fleet import Fleet, by_key, docker_out

pytestmark = pytest.mark.e2e

DATA_DIR = "/opt/sensor/data"


def _canary(fleet: Fleet, *args: str, expect: int) -> dict[str, dict[str, object]]:
    _, result = fleet.json("canary", *args, expect=expect)
    assert result["image"] == "localhost/fleet-python:trixie"
    return by_key(result["nodes"], "node")


def test_canary_runs_on_every_node_and_counts_its_sensors_rows(fleet: Fleet) -> None:
    nodes = _canary(fleet, expect=0)
    assert sorted(nodes) == sorted(fleet.host(i) for i in fleet.containers())
    for node in nodes.values():
        assert node["ok"] is True and node["ran"] is True and node["right"] is True, node
        assert isinstance(node["rows"], int) and node["rows"] >= 1, node
        assert str(node["job_id"]).startswith("j-") and node["reason"] == "", node
        assert isinstance(node["seconds"], float) and 0 < node["seconds"] < 120, node
    # The job really ran in the node's own engine (and was removed): its container is gone, the image stayed.
    some = next(iter(fleet.containers().values()))
    assert docker_out("exec", some, "docker", "image", "inspect", "--format", "{{.Id}}",
                      "localhost/fleet-python:trixie").strip().startswith("sha256:")


def test_a_stopped_sensor_and_a_missing_data_directory_fail_with_their_reason(fleet: Fleet) -> None:
    (stopped_id, stopped), (moved_id, moved), *_ = sorted(fleet.containers().items())
    stopped_node, moved_node = fleet.host(stopped_id), fleet.host(moved_id)
    docker_out("exec", stopped, "docker", "stop", "sensor")
    # Stale as if stopped for ten minutes: the canary allows 120 s since the last reading.
    old = time.time() - 600
    docker_out("exec", stopped, "sh", "-c", f"touch -d @{old:.0f} {DATA_DIR}/*")
    docker_out("exec", moved, "mv", DATA_DIR, f"{DATA_DIR}.moved")
    try:
        nodes = _canary(fleet, "--limit", f"{stopped_node},{moved_node}", expect=1)
        assert sorted(nodes) == sorted([stopped_node, moved_node])
        stale = nodes[stopped_node]
        assert stale["ran"] is True and stale["right"] is False, stale
        assert str(stale["reason"]).startswith("no new reading for ") and "is the sensor running?" in str(
            stale["reason"]), stale
        missing = nodes[moved_node]
        assert missing["ok"] is False and missing["reason"], missing
        assert DATA_DIR in str(missing["reason"]), missing
    finally:
        # Whatever the job left at the path (nothing, or an empty directory a bind mount made) goes first.
        docker_out("exec", moved, "sh", "-c", f"rmdir {DATA_DIR} 2>/dev/null; mv {DATA_DIR}.moved {DATA_DIR}")
        docker_out("exec", stopped, "docker", "start", "sensor")
    deadline = time.monotonic() + 60
    while True:  # the restarted sensor writes again within a second or two
        nodes = _canary(fleet, "--limit", f"{stopped_node},{moved_node}", expect=None)
        if all(n["ok"] for n in nodes.values()) or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert all(n["ok"] for n in nodes.values()), nodes
