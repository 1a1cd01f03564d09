"""The orchestrator double's GET /api/v1/orchestrator/nodes against Bacalhau v1.9.3's behaviour
(facts.md: Bacalhau API).

Every answer comes from real processes: compute doubles that authenticate to the orchestrator's nats-server,
handshake and heartbeat. Loopback only.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from bacalhau_harness import (
    BACALHAU,
    NATS_SERVER,
    NODES,
    TOKEN,
    Node,
    bearer,
    get,
    ids,
    known_node,
    list_nodes,
    request,
    start_compute,
    start_orchestrator,
    wait_for,
    wait_port,
    wait_status,
)

pytestmark = pytest.mark.skipif(not os.path.exists(NATS_SERVER), reason="nats-server is not installed")

ZERO = "0001-01-01T00:00:00Z"
STATE_KEYS = ["Info", "Membership", "Connection", "ConnectionState"]
INFO_KEYS = ["NodeID", "NodeType", "Labels", "SupportedProtocols", "ComputeNodeInfo", "BacalhauVersion"]
COMPUTE_KEYS = ["ExecutionEngines", "Publishers", "StorageSources", "MaxCapacity", "QueueCapacity",
                "AvailableCapacity", "MaxJobRequirements", "RunningExecutions", "EnqueuedExecutions", "address"]
CONN_KEYS = ["Status", "LastHeartbeat", "ConnectedSince", "DisconnectedSince"]
VERSION_KEYS = ["Major", "Minor", "GitVersion", "GitCommit", "BuildDate", "GOOS", "GOARCH"]


def ts(value: str) -> float:
    """Seconds of an RFC 3339 time as Go writes it (up to 9 fraction digits, trailing zeros trimmed)."""
    head, _, frac = value.rstrip("Z").partition(".")
    return datetime.fromisoformat(head + "+00:00").timestamp() + (float("0." + frac) if frac else 0.0)


@pytest.fixture(scope="module")
def steady(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """orch + node-a (labels team=edge zone=z1, 2 CPU, heartbeat 1s) + node-b (team=core, 1 CPU, default 15s)."""
    base = tmp_path_factory.mktemp("steady")
    orch, nats_port = start_orchestrator(base / "orch")
    nodes: list[Node] = [orch]
    try:
        nodes.append(start_compute(base / "a", "node-a", nats_port, interval="1s",
                                   labels={"team": "edge", "zone": "z1"},
                                   capacity={"CPU": "2", "Memory": "2GB", "Disk": "10GB"}))
        wait_status(orch.api_port, "node-a", "CONNECTED")  # handshake order = store order, which ties keep
        nodes.append(start_compute(base / "b", "node-b", nats_port, labels={"team": "core"},
                                   capacity={"CPU": "500m", "Memory": "4GB", "Disk": "10GB"}))
        wait_status(orch.api_port, "node-b", "CONNECTED")
        yield {"port": orch.api_port, "nats": nats_port, "base": base, "orch": orch}
    finally:
        logs = "".join(node.stop() for node in nodes)
        assert TOKEN not in logs


def test_connected_nodes_have_the_real_shape(steady: dict[str, Any]) -> None:
    status, headers, raw = request(steady["port"], NODES)
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert raw.endswith(b"}\n") and b": " not in raw  # json.Encoder: compact, one trailing newline
    body = json.loads(raw)
    assert list(body) == ["NextToken", "Nodes"] and body["NextToken"] == ""
    by_id = {n["Info"]["NodeID"]: n for n in body["Nodes"]}
    assert list(by_id) == ["node-a", "node-b", "orch"]  # NodeID ascending by default
    for node in body["Nodes"]:
        assert list(node) == STATE_KEYS and list(node["Info"]) == INFO_KEYS
        assert list(node["Info"]["ComputeNodeInfo"]) == COMPUTE_KEYS
        assert list(node["Info"]["BacalhauVersion"]) == VERSION_KEYS
        assert node["Info"]["BacalhauVersion"]["GitVersion"] == "v1.9.3"
        assert node["Info"]["SupportedProtocols"] == ["bprotocol/v2", "ncl/v1"]
        assert list(node["ConnectionState"]) == CONN_KEYS  # no LastError while all is well
        assert node["Membership"] == "APPROVED" and node["Connection"] == node["ConnectionState"]["Status"] == \
            "CONNECTED"
        assert node["ConnectionState"]["DisconnectedSince"] == ZERO
        assert ts(node["ConnectionState"]["LastHeartbeat"]) >= ts(node["ConnectionState"]["ConnectedSince"])
    a = by_id["node-a"]["Info"]
    assert a["NodeType"] == "Compute"
    assert a["Labels"] == {"name": "node-a", "os_arch": a["Labels"]["os_arch"], "os_type": "linux", "team": "edge",
                           "zone": "z1"}
    assert list(a["Labels"]) == sorted(a["Labels"])
    assert a["ComputeNodeInfo"]["MaxCapacity"] == {"CPU": 2, "Memory": 2_000_000_000, "Disk": 10_000_000_000}
    assert a["ComputeNodeInfo"]["AvailableCapacity"] == a["ComputeNodeInfo"]["MaxCapacity"]
    assert a["ComputeNodeInfo"]["QueueCapacity"] == {} and a["ComputeNodeInfo"]["address"] == ""
    assert by_id["node-b"]["Info"]["ComputeNodeInfo"]["MaxCapacity"]["CPU"] == 0.5
    # The orchestrator lists itself: a permanently CONNECTED Requester with Go's zero ComputeNodeInfo.
    me = by_id["orch"]
    assert me["Info"]["NodeType"] == "Requester" and me["Info"]["Labels"]["role"] == "orchestrator"
    assert me["Info"]["ComputeNodeInfo"] == {
        "ExecutionEngines": None, "Publishers": None, "StorageSources": None, "MaxCapacity": {},
        "QueueCapacity": {}, "AvailableCapacity": {}, "MaxJobRequirements": {}, "RunningExecutions": 0,
        "EnqueuedExecutions": 0, "address": ""}


def test_heartbeats_follow_compute_heartbeat_interval(steady: dict[str, Any]) -> None:
    port = steady["port"]
    before = known_node(port, "node-a")["ConnectionState"]["LastHeartbeat"]
    after = wait_for(lambda: (h := known_node(port, "node-a")["ConnectionState"]["LastHeartbeat"]) != before and h,
                     3.0, "a heartbeat of node-a (Interval 1s)")
    assert 0.5 < ts(after) - ts(before) < 2.5
    b = known_node(port, "node-b")["ConnectionState"]
    assert b["LastHeartbeat"] == b["ConnectedSince"]  # 15s interval: no heartbeat yet, only the handshake
    assert known_node(port, "orch")["ConnectionState"]["LastHeartbeat"] == \
        known_node(port, "orch")["ConnectionState"]["ConnectedSince"]  # never updated for itself


@pytest.mark.parametrize(("query", "expected"), [
    ("?filter-status=connected", ["node-a", "node-b", "orch"]),
    ("?filter-status=DISCONNECTED", []),
    ("?filter-status=bogus", []),
    ("?filter-approval=Approved", ["node-a", "node-b", "orch"]),
    ("?filter-approval=pending", []),
    ("?labels=team%3Dedge", ["node-a"]),
    ("?labels=team%3D%3Dcore", ["node-b"]),
    ("?labels=team%21%3Dedge", ["node-b", "orch"]),  # != matches nodes without the key
    ("?labels=team", ["node-a", "node-b"]),
    ("?labels=%21team", ["orch"]),
    ("?labels=team%20in%20(edge,core)", ["node-a", "node-b"]),
    ("?labels=team%20notin%20(edge)", ["node-b", "orch"]),
    ("?labels=team&labels=zone%3Dz1", ["node-a"]),  # repeated = AND
    ("?labels=team,role", []),
    ("?labels=", ["node-a", "node-b", "orch"]),
    ("?order_by=id&reverse=true", ["orch", "node-b", "node-a"]),
    ("?order_by=type", ["orch", "node-a", "node-b"]),  # NodeType is an int enum: Requester < Compute
    ("?order_by=type&reverse=1", ["node-a", "node-b", "orch"]),  # reverse flips the comparison, not the ties
    ("?order_by=available_cpu", ["node-a", "node-b", "orch"]),  # capacities sort descending
    ("?order_by=available_memory", ["node-b", "node-a", "orch"]),
    ("?order_by=available_gpu", ["orch", "node-a", "node-b"]),  # all 0: store order (self-registered first)
    ("?order_by=status", ["orch", "node-a", "node-b"]),  # sic: upstream sorts "status" by membership
    ("?limit=1", ["node-a"]),
    ("?limit=2&order_by=id&reverse=true", ["orch", "node-b"]),
    ("?limit=0", ["node-a", "node-b", "orch"]),
    ("?LIMIT=1", ["node-a"]),  # echo's binder also matches names case-insensitively
])
def test_filters_labels_order_and_limit(steady: dict[str, Any], query: str, expected: list[str]) -> None:
    assert ids(steady["port"], query) == expected


def _error(port: int, path: str, method: str = "GET", headers: dict[str, str] | None = None
           ) -> tuple[int, dict[str, Any]]:
    status, response_headers, raw = request(port, path, method, headers)
    assert response_headers.get("Content-Type") == "application/json" and raw.endswith(b"\n")
    return status, json.loads(raw)


def test_error_bodies(steady: dict[str, Any]) -> None:
    port = steady["port"]
    assert _error(port, NODES + "?order_by=cpu") == (400, {
        "Status": 400, "Message": "invalid order_by", "RequestID": "", "Code": "InternalError",
        "Component": "APIServer"})
    status, body = _error(port, NODES + "?limit=abc")
    parse_error = 'strconv.ParseUint: parsing "abc": invalid syntax'
    assert status == 400 and body["Message"] == f"code=400, message={parse_error}, internal={parse_error}"
    assert _error(port, NODES + "?reverse=maybe")[1]["Message"].startswith('code=400, message=strconv.ParseBool')
    assert _error(port, NODES + "?labels=team%20in%20edge")[1]["Message"] == \
        "unable to parse requirement: found 'edge' expected: '('"
    assert _error(port, NODES + "/nope") == (404, {
        "Status": 404, "Message": "node not found: nope", "RequestID": "", "Code": "NotFound",
        "Component": "NodesManager"})
    assert _error(port, NODES + "/node") == (409, {
        "Status": 409, "Message": "multiple nodes found for prefix: node, matching IDs: [node-a node-b]",
        "RequestID": "", "Code": "MultipleNodesFound", "Component": "NodesManager",
        "Hint": "Use a more specific node ID prefix"})
    assert _error(port, NODES + "/")[1]["Message"] == "missing node id"
    status, body = _error(port, "/api/v1/nothing-here", headers={"X-Request-ID": "req-7"})
    assert (status, body["Message"], body["Code"], body["Component"], body["RequestID"]) == (
        404, "The requested resource/URL was not found.", "NotFound", "APIServer", "req-7")
    assert body["Hint"] and list(body["Details"]) == ["cli_usage"]
    assert _error(port, NODES, method="POST") == (405, {
        "Status": 405, "Message": "Method Not Allowed", "RequestID": "", "Code": "InternalError",
        "Component": "APIServer"})


def test_get_node_by_prefix(steady: dict[str, Any]) -> None:
    status, body = get(steady["port"], NODES + "/node-b")
    assert status == 200 and list(body) == ["Node"] and body["Node"]["Info"]["NodeID"] == "node-b"
    assert get(steady["port"], NODES + "/or")[1]["Node"]["Info"]["NodeType"] == "Requester"


def test_a_wrong_token_never_joins(steady: dict[str, Any]) -> None:
    intruder = start_compute(steady["base"] / "intruder", "intruder", steady["nats"], token="not-the-token",
                             env={**os.environ, "BACALHAU_DOUBLE_CONNECT_DEADLINE": "1"})
    assert intruder.proc.wait(timeout=15) == 1
    assert "authentication failed" in intruder.output() and "not-the-token" not in intruder.output()
    assert "intruder" not in ids(steady["port"])
    assert get(steady["port"], NODES + "/intruder")[0] == 404


def test_liveness_kill_term_slow_heartbeats_and_rejoin(tmp_path: Path) -> None:
    orch, nats_port = start_orchestrator(tmp_path / "orch", node_manager={"DisconnectTimeout": "3s"})
    port = orch.api_port
    killed = start_compute(tmp_path / "k", "node-kill", nats_port, interval="1s")
    termed = start_compute(tmp_path / "t", "node-term", nats_port, interval="1s")
    slow = start_compute(tmp_path / "s", "node-slow", nats_port, interval="5s")  # beats slower than the timeout
    nodes = [orch, killed, termed, slow]
    try:
        for name in ("node-kill", "node-term", "node-slow"):
            wait_status(port, name, "CONNECTED")
        first = {n["Info"]["NodeID"]: n["ConnectionState"] for n in list_nodes(port)}
        killed.proc.send_signal(signal.SIGKILL)  # no goodbye: only the missing heartbeats can tell
        termed.proc.send_signal(signal.SIGTERM)  # graceful: a shutdown notice, DISCONNECTED at once
        t0 = time.monotonic()
        term = wait_status(port, "node-term", "DISCONNECTED", timeout=2.0)["ConnectionState"]
        assert termed.proc.wait(timeout=5) == 0
        assert term["LastError"] == "graceful shutdown" and term["DisconnectedSince"] != ZERO
        seen_slow: list[dict[str, Any]] = []

        def sample(node_id: str) -> dict[str, Any]:
            """One list read: records node-slow's state on the way, returns node_id's ConnectionState."""
            states = {n["Info"]["NodeID"]: n["ConnectionState"] for n in list_nodes(port)}
            seen_slow.append(states["node-slow"])
            return dict(states[node_id])

        kill = wait_for(lambda: (s := sample("node-kill"))["Status"] == "DISCONNECTED" and s, 8.0,
                        "node-kill DISCONNECTED")
        noticed_after = time.monotonic() - t0
        # Timeout 3s, checked every max(3s/3, 1s) = 1s, the last heartbeat up to 1s before the kill.
        assert kill["LastError"] == "heartbeat timeout" and noticed_after < 3 + 1 + 1 + 1.5, noticed_after
        assert 3.0 < ts(kill["DisconnectedSince"]) - ts(kill["LastHeartbeat"]) < 3.0 + 1.0 + 0.5
        # node-slow heartbeats every 5s: it times out too, then its next heartbeat is refused with
        # HandshakeRequired and it handshakes again: CONNECTED with a new ConnectedSince.
        rejoined_slow = wait_for(lambda: (s := sample("node-slow"))["ConnectedSince"] != first["node-slow"][
            "ConnectedSince"] and s, 8.0, "node-slow to rejoin")
        timed_out = [s for s in seen_slow if s["Status"] == "DISCONNECTED"]
        assert timed_out and timed_out[0]["LastError"] == "heartbeat timeout"
        assert timed_out[0]["ConnectedSince"] == first["node-slow"]["ConnectedSince"]
        assert rejoined_slow["Status"] == "CONNECTED" and "LastError" not in rejoined_slow
        assert rejoined_slow["DisconnectedSince"] == ZERO
        # Departed nodes stay listed; a restarted one handshakes again.
        assert ids(port) == ["node-kill", "node-slow", "node-term", "orch"]
        killed.restart()
        back = wait_status(port, "node-kill", "CONNECTED")["ConnectionState"]
        assert ts(back["ConnectedSince"]) > ts(first["node-kill"]["ConnectedSince"])
        assert back["DisconnectedSince"] == ZERO and "LastError" not in back
        assert "handshake successful with node node-kill" in orch.output()
    finally:
        logs = "".join(node.stop() for node in nodes)
    assert TOKEN not in logs


def test_departed_nodes_survive_an_orchestrator_restart_and_manual_approval(tmp_path: Path) -> None:
    orch, nats_port = start_orchestrator(tmp_path / "orch", node_manager={"ManualApproval": True})
    compute = start_compute(tmp_path / "c", "node-p", nats_port, interval="1s")
    try:
        pending = wait_status(orch.api_port, "node-p", "CONNECTED")
        assert pending["Membership"] == "PENDING"  # CONNECTED but not approved: not ready for jobs
        assert ids(orch.api_port, "?filter-approval=PENDING") == ["node-p"]
        self_since = known_node(orch.api_port, "orch")["ConnectionState"]["ConnectedSince"]
        orch.stop()
        assert compute.proc.wait(timeout=10) == 1  # its connection dropped
        orch.restart()
        wait_port(orch.api_port)
        after = known_node(orch.api_port, "node-p")
        assert after["ConnectionState"]["Status"] == "DISCONNECTED" and after["Membership"] == "PENDING"
        assert after["Info"]["ComputeNodeInfo"]["AvailableCapacity"] == {}
        assert known_node(orch.api_port, "orch")["ConnectionState"]["ConnectedSince"] == self_since
    finally:
        compute.stop()
        orch.stop()


OPS_KEY = "ops-key-" + "a1" * 12
AGENT_KEY = "agent-key-" + "b2" * 12
ADMIN_KEY = "admin-key-" + "c3" * 12
PASSWORD = "pw-" + "d4" * 8
USERS = {"Users": [
    {"Alias": "ops", "APIKey": OPS_KEY, "Capabilities": [{"Actions": ["read:node"]}]},
    {"Alias": "agent-reader", "APIKey": AGENT_KEY, "Capabilities": [{"Actions": ["read:agent"]}]},
    {"APIKey": ADMIN_KEY, "Capabilities": [{"Actions": ["*"]}]},
    {"Username": "viewer", "Password": PASSWORD, "Capabilities": [{"Actions": ["read:*"]}]},
]}


def test_api_auth(tmp_path: Path) -> None:
    orch, _ = start_orchestrator(tmp_path / "orch", api_auth=USERS)
    port = orch.api_port
    try:
        assert get(port, "/api/v1/agent/alive") == (200, {"Status": "OK"})  # open without credentials
        assert _error(port, NODES) == (401, {
            "Status": 401, "Message": "Request Unauthorized", "RequestID": "", "Code": "Unauthorized",
            "Component": "Authorizer", "Hint": "Unauthorized principal. Event has been recorded.",
            "Details": {"reason": "Missing Authorization header"}})
        assert _error(port, NODES, headers=bearer("x" * 24))[1]["Details"] == {"reason": "invalid API key"}
        assert _error(port, NODES, headers={"Authorization": "Token abc"})[1]["Details"] == {
            "reason": "unsupported authentication method"}
        assert _error(port, NODES, headers=bearer(AGENT_KEY)) == (403, {
            "Status": 403, "Message": "Request Forbidden", "RequestID": "", "Code": "Forbidden",
            "Component": "Authorizer", "Hint": "Check if user have access to this resource. Event has been recorded.",
            "Details": {"reason": "user 'agent-reader' does not have the required capability 'read:node'"}})
        assert [n["Info"]["NodeID"] for n in list_nodes(port, headers=bearer(OPS_KEY))] == ["orch"]
        basic = {"Authorization": "Basic " + base64.b64encode(f"Viewer:{PASSWORD}".encode()).decode()}
        assert get(port, NODES, basic)[0] == 200  # usernames are case-insensitive
        assert _error(port, "/api/v1/agent/config", headers=bearer(OPS_KEY))[0] == 403  # needs read:agent
        status, config = get(port, "/api/v1/agent/config", bearer(AGENT_KEY))
        users = config["config"]["API"]["Auth"]["Users"]
        assert status == 200 and {u.get("APIKey") or u.get("Password") for u in users} == {"********"}
        assert _error(port, "/api/v1/nothing")[0] == 401  # authorization runs before routing's 404
        assert _error(port, "/api/v1/nothing", headers=bearer(ADMIN_KEY))[0] == 404
        assert _error(port, NODES + "/nope", headers=bearer(ADMIN_KEY))[0] == 404
    finally:
        logs = orch.stop()
    for secret in (OPS_KEY, AGENT_KEY, ADMIN_KEY, PASSWORD, TOKEN):
        assert secret not in logs


def test_bad_api_users_are_refused_without_printing_secrets(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"DataDir": str(tmp_path / "d"), "Orchestrator": {"Enabled": True},
                                  "API": {"Auth": {"Users": [{"Alias": "ops", "APIKey": "short-key-1",
                                                              "Capabilities": [{"Actions": ["read:node"]}]}]}}}))
    result = subprocess.run(BACALHAU + ["serve", "--config", str(config)], capture_output=True, text=True, timeout=20)
    assert result.returncode == 1
    assert "error initializing users: API key for user 'ops' is too short, minimum length is 20 characters" in \
        result.stderr
    assert "short-key-1" not in result.stdout + result.stderr
