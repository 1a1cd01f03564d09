"""The health verdict (fleetdeploy.health.verdict) and the table health.yml prints, without Docker or Ansible."""

from __future__ import annotations

from typing import Any

from fleetdeploy.health.verdict import (
    ERROR_FACT,
    NOT_CONFIGURED_FACT,
    STATUS_FACT,
    Health,
    NodeReport,
    judge,
)
from fleetdeploy.orchestrator.api import OrchestratorAnswer, OrchestratorNode
from fleetdeploy.output.plain import health_table

HEARTBEAT = "2026-12-06T10:11:12.123456789Z"


def status(healthy: bool, *failing: tuple[str, str]) -> dict[str, Any]:
    checks = [{"name": "docker", "ok": True, "detail": "27.5.1"},
              {"name": "container:bacalhau", "ok": True, "detail": "running", "image": "bacalhau:v1.9.3"},
              *({"name": name, "ok": False, "detail": detail} for name, detail in failing)]
    return {"healthy": healthy, "failing": [name for name, _ in failing], "checks": checks}


def connected(name: str, approval: str = "APPROVED") -> OrchestratorNode:
    return OrchestratorNode(name, "CONNECTED", approval, last_heartbeat=HEARTBEAT, connected_since=HEARTBEAT)


def test_the_nodes_own_checks_decide_without_an_orchestrator() -> None:
    result = judge([
        NodeReport.from_facts("n-ok", {STATUS_FACT: status(True)}),
        NodeReport.from_facts("n-sick", {STATUS_FACT: status(False, ("sensor:readings", "count 10 -> 10 in 10 s"))}),
        NodeReport.from_facts("n-new", {NOT_CONFIGURED_FACT: True}),
        NodeReport.from_facts("n-broken", {ERROR_FACT: "exit 2: settings.json: unknown settings typo"}),
        NodeReport.from_facts("n-gone", {}, unreachable=True, message="ssh: connect to host: Connection refused"),
        NodeReport.from_facts("n-silent", {}),
    ])
    by_node = {row.node: row for row in result.nodes}
    assert [row.node for row in result.nodes] == sorted(by_node)
    assert by_node["n-ok"].health is Health.HEALTHY and by_node["n-ok"].failing == []
    assert by_node["n-ok"].images == {"bacalhau": "bacalhau:v1.9.3"}
    assert by_node["n-sick"].health is Health.UNHEALTHY
    assert by_node["n-sick"].failing == ["sensor:readings (count 10 -> 10 in 10 s)"]
    assert by_node["n-new"].health is Health.NOT_CONFIGURED
    assert by_node["n-broken"].failing == ["health check did not run: exit 2: settings.json: unknown settings typo"]
    assert by_node["n-gone"].health is Health.UNREACHABLE
    assert by_node["n-gone"].failing == ["ssh: connect to host: Connection refused"]
    assert by_node["n-silent"].failing == ["health check did not run: no health status was collected"]
    assert all(row.orchestrator is None for row in result.nodes)
    assert not result.ok and result.orchestrator_note == ""


def test_a_node_is_healthy_only_when_the_orchestrator_agrees() -> None:
    answer = OrchestratorAnswer({
        "n-ok": connected("n-ok"),
        "n-pending": connected("n-pending", approval="PENDING"),
        "n-dropped": OrchestratorNode("n-dropped", "DISCONNECTED", "APPROVED", last_heartbeat=HEARTBEAT,
                                      last_error="heartbeat timeout"),
    })
    healthy = {STATUS_FACT: status(True)}
    result = judge([NodeReport.from_facts(name, healthy) for name in ("n-ok", "n-pending", "n-dropped", "n-never")],
                   answer)
    rows = {row.node: row for row in result.nodes}
    assert rows["n-ok"].health is Health.HEALTHY and rows["n-ok"].orchestrator is not None
    assert rows["n-ok"].orchestrator.ready
    assert rows["n-pending"].health is Health.UNHEALTHY
    assert rows["n-pending"].failing == ["orchestrator: membership PENDING (approve it: bacalhau node approve "
                                         "n-pending)"]
    assert rows["n-dropped"].failing == ["orchestrator: DISCONNECTED per the orchestrator (heartbeat timeout), "
                                         "last heartbeat 2026-12-06 10:11:12Z"]
    assert rows["n-never"].orchestrator is not None and rows["n-never"].orchestrator.connection == "not listed"
    assert rows["n-never"].failing[0].startswith("orchestrator: not listed by the orchestrator")
    # An unreachable node stays unreachable (not "unhealthy"), whatever the orchestrator says of it.
    gone = judge([NodeReport.from_facts("n-ok", {}, unreachable=True, message="timed out")], answer).nodes[0]
    assert gone.health is Health.UNREACHABLE and gone.failing == ["timed out"]
    gone = judge([NodeReport.from_facts("n-never", {}, unreachable=True)], answer).nodes[0]
    assert gone.health is Health.UNREACHABLE and gone.failing[0].startswith("orchestrator: not listed")


def test_an_unreadable_orchestrator_never_fails_a_node() -> None:
    answer = OrchestratorAnswer({}, "orchestrator API http://127.0.0.1:1 unreachable: Connection refused")
    result = judge([NodeReport.from_facts("n-ok", {STATUS_FACT: status(True)})], answer)
    assert result.ok and result.nodes[0].orchestrator is None
    assert result.orchestrator_note == answer.error


def test_the_table_has_a_row_per_node_and_never_cuts_a_reason() -> None:
    long_reason = "disk:/opt/sensor/data (" + "x" * 300 + ")"
    answer = OrchestratorAnswer({"n-ok": connected("n-ok")})
    result = judge([
        NodeReport.from_facts("n-ok", {STATUS_FACT: status(True)}),
        NodeReport.from_facts("n-sick", {STATUS_FACT: status(False, ("disk:/opt/sensor/data", "x" * 300))}),
    ], answer)
    lines = health_table(result)
    assert lines[0].split() == ["HOST", "OVERALL", "ORCHESTRATOR", "FAILING", "CHECKS"]
    assert lines[1].split()[:5] == ["n-ok", "healthy", "CONNECTED", "APPROVED", "2026-12-06"]
    assert lines[2].split()[:3] == ["n-sick", "unhealthy", "not"]
    assert long_reason in lines[2]
    # Columns line up: every row's second column starts where the header's does.
    assert {line.index(line.split()[1]) for line in lines} == {lines[0].index("OVERALL")}

    no_api = health_table(judge([NodeReport.from_facts("n-ok", {STATUS_FACT: status(True)})]))
    assert no_api[1].split()[:3] == ["n-ok", "healthy", "-"]
    unreadable = health_table(judge([NodeReport.from_facts("n-ok", {STATUS_FACT: status(True)})],
                                    OrchestratorAnswer({}, "orchestrator API x answered 500 boom")))
    assert unreadable[1].split()[:3] == ["n-ok", "healthy", "unknown"]
    assert unreadable[-1] == "orchestrator API x answered 500 boom (node checks above are unaffected)"


def test_a_spot_notice_is_shown_beside_a_healthy_verdict() -> None:
    warned = {**status(True), "interruption": {"action": "terminate", "time": "2026-12-06T10:02:00Z"}}
    result = judge([NodeReport.from_facts("n-warned", {STATUS_FACT: warned}),
                    NodeReport.from_facts("n-ok", {STATUS_FACT: {**status(True), "interruption": None}})])
    rows = {row.node: row for row in result.nodes}
    assert rows["n-warned"].health is Health.HEALTHY and rows["n-warned"].interruption == "terminate at " \
        "2026-12-06T10:02:00Z"
    assert rows["n-ok"].interruption == ""
    assert health_table(result)[-1] == "spot interruption notice on n-warned: terminate at 2026-12-06T10:02:00Z"
