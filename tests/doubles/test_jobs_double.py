"""The orchestrator double runs jobs on compute doubles like Bacalhau v1.9.3 (pkg/orchestrator, pkg/compute).

Real processes: an orchestrator with its nats-server and three compute doubles. Containers "run" in
FakeDockerEngine (fake_docker.py, a fake Engine API on a unix socket); test_jobs_real_docker.py runs a real one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bacalhau_harness import (
    NATS_SERVER,
    TOKEN,
    Node,
    get,
    start_compute,
    start_orchestrator,
    wait_for,
    wait_port,
    wait_status,
)
from fake_docker import FakeDockerEngine
from jobs_harness import JOBS, docker_job, events, local_input, run, submit, wait_job

pytestmark = pytest.mark.skipif(not os.path.exists(NATS_SERVER), reason="nats-server is not installed")

JOB_KEYS = ["ID", "Name", "Namespace", "Type", "Priority", "Count", "Constraints", "Meta", "Labels", "Tasks", "State",
            "Version", "Revision", "CreateTime", "ModifyTime"]
EXECUTION_KEYS = ["ID", "Namespace", "EvalID", "Name", "NodeID", "JobID", "Job", "JobVersion", "AllocatedResources",
                  "DesiredState", "ComputeState", "PublishedResult", "RunOutput", "PreviousExecution",
                  "NextExecution", "FollowupEvalID", "Revision", "CreateTime", "ModifyTime"]
COMPLETED, FAILED, STOPPED = 9, 10, 2  # ExecutionStateType / ExecutionDesiredStateType are ints on the wire


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """node-a (zone a, allow-lists data/), node-b (zone b, no allowed paths), node-c (zone c, no Docker)."""
    base = tmp_path_factory.mktemp("jobs")
    data, secret = base / "data", base / "secret"
    for directory in (data, secret):
        directory.mkdir()
    (data / "readings.csv").write_text("sensor-1,21.5\n")
    fake = FakeDockerEngine()
    fake.add_image("alpine:3.20")
    fake.add_image("localhost/fleet-python:trixie", digests=False)
    env = {**os.environ, "BACALHAU_DOUBLE_DOCKER_SOCKET": fake.socket}
    orch, nats_port = start_orchestrator(base / "orch")
    nodes: list[Node] = [orch]
    try:
        for name, zone, extra in (("node-a", "a", {"AllowListedLocalPaths": [f"{data}:ro", f"{data}/**:ro"]}),
                                  ("node-b", "b", {}), ("node-c", "c", {})):
            node_env = env if zone != "c" else {**env, "BACALHAU_DOUBLE_DOCKER_SOCKET": str(base / "no.sock")}
            nodes.append(start_compute(base / name, name, nats_port, labels={"zone": zone}, env=node_env,
                                       compute=extra))
            wait_status(orch.api_port, name, "CONNECTED")
        yield {"port": orch.api_port, "data": data, "secret": secret, "fake": fake}
    finally:
        logs = "".join(node.stop() for node in nodes)
        fake.close()
        assert TOKEN not in logs


def test_a_canary_runs_to_completion_with_the_real_shapes(fleet: dict[str, Any]) -> None:
    port, fake = fleet["port"], fleet["fake"]
    body = docker_job("alpine:3.20", ["cat", "/data/readings.csv"], zone="a", inputs=[local_input(str(fleet["data"]))])
    response = run(port, body)
    job = response["Job"]
    assert list(response) == ["Job", "History", "Executions"] and list(job) == JOB_KEYS
    assert re.fullmatch(r"j-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", job["ID"])
    assert job["Name"] == job["ID"] and job["Namespace"] == "default" and job["Count"] == 1
    assert job["State"] == {"StateType": "Completed"} and job["Version"] == 1 and job["Revision"] == 3
    assert job["Meta"]["bacalhau.org/orchestrator.id"] == job["Meta"]["bacalhau.org/requester.id"] == "orch"
    task = job["Tasks"][0]
    assert task["Resources"] == {"CPU": "500m", "Memory": "512mb"}  # JobDefaults, normalized to lower case
    assert task["Publisher"] == {"Type": ""} and task["Network"] == {"Type": "Default"} and task["Timeouts"] == {}
    [execution] = response["Executions"]["Items"]
    assert list(execution) == EXECUTION_KEYS and execution["NodeID"] == "node-a"
    assert re.fullmatch(r"e-[0-9a-f-]{36}", execution["ID"]) and execution["Job"]["State"] == {"StateType": "Pending"}
    # mergo keeps the approval's message on the completed state, as upstream does.
    assert execution["ComputeState"] == {"StateType": COMPLETED, "Message": "Running"}
    assert execution["DesiredState"] == {"StateType": STOPPED, "Message": "execution completed"}
    assert execution["RunOutput"] == {"Stdout": "sensor-1,21.5\n", "StdoutTruncated": False, "stderr": "",
                                      "StderrTruncated": False, "ExitCode": 0, "ErrorMsg": ""}
    assert execution["Revision"] == 4 and execution["AllocatedResources"] == {"Tasks": {}}
    assert events(response) == [
        ("JobLevel", "Submission", "Job submitted"), ("ExecutionLevel", "Scheduling", "Requested execution on node-a"),
        ("JobLevel", "State Update", "Running"), ("ExecutionLevel", "Execution", "Running"),
        ("ExecutionLevel", "Execution", "Completed successfully"), ("JobLevel", "State Update", "Completed")]
    assert get(port, f"{JOBS}/{job['ID']}/executions") == (200, {"NextToken": "", "Items": [execution]})
    create = fake.calls("POST", "/containers/create")[-1]
    assert create["Image"] == "alpine:3.20" and create["Entrypoint"] == ["cat"]
    assert create["Cmd"] == ["/data/readings.csv"] and create["Labels"]["bacalhau-executor"] == "node-a"
    assert create["HostConfig"]["Mounts"] == [{"Type": "bind", "Source": str(fleet["data"]), "Target": "/data",
                                               "ReadOnly": True}]
    assert create["HostConfig"]["NetworkMode"] == "bridge"  # the real default for a job without a network type
    assert (create["HostConfig"]["Memory"], create["HostConfig"]["NanoCpus"]) == (512_000_000, 500_000_000)
    assert f"BACALHAU_JOB_ID={job['ID']}" in create["Env"] and "BACALHAU_PARTITION_COUNT=1" in create["Env"]
    assert not fake.containers  # stopped and removed


@pytest.mark.parametrize(("constraint", "node"), [
    ({"Key": "zone", "Operator": "=", "Values": ["b"]}, "node-b"),
    ({"Key": "zone", "Operator": "in", "Values": ["a", "x"]}, "node-a"),
    ({"Key": "zone", "Operator": "notin", "Values": ["a", "c"]}, "node-b"),
])
def test_constraints_pick_the_node(fleet: dict[str, Any], constraint: dict[str, Any], node: str) -> None:
    body = docker_job("alpine:3.20", ["echo", "hello"])
    body["Job"]["Constraints"] = [constraint]
    response = run(fleet["port"], body)
    assert response["Job"]["State"]["StateType"] == "Completed"
    assert [(e["NodeID"], e["RunOutput"]["Stdout"]) for e in response["Executions"]["Items"]] == [(node, "hello\n")]


def test_no_matching_node_fails_the_job_at_once(fleet: dict[str, Any]) -> None:
    response = run(fleet["port"], docker_job("alpine:3.20", ["echo", "x"], zone="z"))
    message = response["Job"]["State"]["Message"]
    assert response["Job"]["State"]["StateType"] == "Failed" and not response["Executions"]["Items"]
    assert message.startswith("not enough nodes to run job. requested: 1, available: 3, suitable: 0.\n• ")
    assert "• Node node-a: labels map[name:node-a os_arch:" in message
    assert "os_type:linux zone:a] don't match required selectors [zone = z]" in message
    [failure] = [h for h in response["History"]["Items"] if h["Event"]["Topic"] == "Scheduling"]
    assert failure["Event"]["Message"] == message and failure["Event"]["Details"] == {
        "IsError": "true", "NodesAvailable": "3", "NodesRequested": "1", "NodesSuitable": "0"}


def test_each_ranker_gives_its_reason(fleet: dict[str, Any]) -> None:
    # node-c has no Docker engine; node-b allow-lists no local path, so it does not offer localDirectory.
    response = run(fleet["port"], docker_job("alpine:3.20", ["echo", "x"], zone="c"))
    assert "• Node node-c: does not support docker, only wasm" in response["Job"]["State"]["Message"]
    response = run(fleet["port"], docker_job("alpine:3.20", ["echo"], zone="b", inputs=[local_input("/tmp")]))
    assert "• Node node-b: does not support localDirectory, only inline, urldownload" in \
        response["Job"]["State"]["Message"]


def _failed_twice(response: dict[str, Any], message: str) -> None:
    """Upstream retries a failed execution once on the same node, then no node is left."""
    executions = response["Executions"]["Items"]
    assert [(e["NodeID"], e["ComputeState"], e["DesiredState"]) for e in executions] == 2 * [
        ("node-a", {"StateType": FAILED, "Message": message}, {"StateType": STOPPED, "Message": "execution failed"})]
    state = response["Job"]["State"]
    assert state["StateType"] == "Failed" and state["Message"].startswith(
        "not enough nodes to run job. requested: 1, available: 3, suitable: 0.\n• Node node-a: job already executed "
        "on this node more than once\n• Node node-b: labels ")


def test_local_volumes_are_checked_while_bidding_with_the_real_messages(fleet: dict[str, Any]) -> None:
    port, secret, data = fleet["port"], str(fleet["secret"]), str(fleet["data"])
    message = f"calculating resource usage of job: volume {secret} is not allowlisted"
    response = run(port, docker_job("alpine:3.20", ["cat", "/data/x"], zone="a", inputs=[local_input(secret)]))
    _failed_twice(response, message)
    scan = [h["Event"] for h in response["History"]["Items"] if h["Event"]["Topic"] == "Exec Scanning"]
    assert scan[0]["Message"] == message and scan[0]["Details"] == {
        "ErrorCode": "Bacalhau:ConfigurationError", "Hint": "Verify Compute.AllowListedLocalPaths configuration "
                                                            "property", "IsError": "true"}
    response = run(port, docker_job("alpine:3.20", ["echo"], zone="a", inputs=[local_input(data, read_write=True)]))
    _failed_twice(response, f"calculating resource usage of job: volume {data} is not granted write access")
    missing = f"{data}/gone"  # allow-listed by data/**, but not there
    response = run(port, docker_job("alpine:3.20", ["echo"], zone="a", inputs=[local_input(missing)]))
    _failed_twice(response, f"calculating resource usage of job: volume {missing} does not exist and creation is not "
                            "allowed")
    assert not [c for c in fleet["fake"].calls("POST", "/containers/create") if c["Cmd"] == ["/data/x"]]


def test_images_must_be_on_the_node_with_a_digest(fleet: dict[str, Any]) -> None:
    response = run(fleet["port"], docker_job("ghcr.io/nope/nothing:1", ["echo"], zone="a"))
    _failed_twice(response, 'image not available: "ghcr.io/nope/nothing:1"')
    scan = [h["Event"] for h in response["History"]["Items"] if h["Event"]["Topic"] == "Exec Scanning"][0]
    assert scan["Details"]["ErrorCode"] == "Docker:ImageNotFound" and scan["Details"]["IsError"] == "true"
    # A locally built image has no repository digest: a real node would ask the registry before bidding.
    response = run(fleet["port"], docker_job("localhost/fleet-python:trixie", ["echo"], zone="a"))
    message = response["Executions"]["Items"][0]["ComputeState"]["Message"]
    assert message.startswith("image 'localhost/fleet-python:trixie' has no repository digest on this node: a real "
                              "v1.9.3 compute node looks its manifest up in the registry")
    assert all(c["Image"] != "localhost/fleet-python:trixie" for c in fleet["fake"].calls("POST", "/containers/create"))


def test_exit_codes_output_limits_and_timeouts(fleet: dict[str, Any]) -> None:
    port = fleet["port"]
    response = run(port, docker_job("alpine:3.20", ["sh", "-c", "echo out; echo>&2 err; exit 3"], zone="a"))
    # A non-zero exit code is no failure upstream: the job completes, the canary must read ExitCode.
    assert response["Job"]["State"]["StateType"] == "Completed"
    output = response["Executions"]["Items"][0]["RunOutput"]
    assert (output["Stdout"], output["stderr"], output["ExitCode"]) == ("out\n", "err\n", 3)
    response = run(port, docker_job("alpine:3.20", ["echo", "x" * 3000], zone="a"))
    output = response["Executions"]["Items"][0]["RunOutput"]
    assert output["Stdout"] == "x" * 2048 and output["StdoutTruncated"] is True
    response = run(port, docker_job("alpine:3.20", ["sleep", "30"], zone="a", Timeouts={"ExecutionTimeout": 1}))
    _failed_twice(response, "Execution timed out after 1s")
    assert not fleet["fake"].containers


def test_network_types_and_unknown_engines(fleet: dict[str, Any]) -> None:
    port, fake = fleet["port"], fleet["fake"]
    for network, mode in (("None", "none"), ("Host", "host"), ("bridge", "bridge")):
        assert run(port, docker_job("alpine:3.20", ["echo"], zone="a", Network={"Type": network}))["Job"][
            "State"]["StateType"] == "Completed"
        assert fake.calls("POST", "/containers/create")[-1]["HostConfig"]["NetworkMode"] == mode
    body = docker_job("alpine:3.20", ["echo"], zone="a")
    body["Job"]["Tasks"][0]["Engine"]["Type"] = "podman"  # accepted like upstream, then no node supports it
    response = run(port, body)
    assert "• Node node-a: does not support podman, only docker, wasm" in response["Job"]["State"]["Message"]


def test_jobs_survive_an_orchestrator_restart(tmp_path: Path) -> None:
    orch, _ = start_orchestrator(tmp_path / "orch")
    try:
        response = run(orch.api_port, docker_job("alpine:3.20", ["echo"]))
        assert response["Job"]["State"]["Message"] == "not enough nodes to run job. requested: 1, available: 0, " \
                                                      "suitable: 0."
        orch.stop()
        orch.restart()
        wait_port(orch.api_port)
        assert get(orch.api_port, f"{JOBS}/{response['Job']['ID']}") == (200, {"Job": response["Job"]})
    finally:
        orch.stop()


def test_a_node_leaving_fails_its_execution(tmp_path: Path) -> None:
    fake = FakeDockerEngine()
    fake.add_image("alpine:3.20")
    orch, nats_port = start_orchestrator(tmp_path / "orch")
    node = start_compute(tmp_path / "x", "node-x", nats_port, env={**os.environ,
                                                                   "BACALHAU_DOUBLE_DOCKER_SOCKET": fake.socket})
    try:
        wait_status(orch.api_port, "node-x", "CONNECTED")
        job_id = submit(orch.api_port, docker_job("alpine:3.20", ["sleep", "30"]))
        wait_for(lambda: fake.calls("POST", r"/containers/[0-9a-f]+/start"), 10.0, "the container to start")
        node.stop()  # its shutdown notice makes it DISCONNECTED at once
        response = wait_job(orch.api_port, job_id)
        [execution] = response["Executions"]["Items"]
        gone = "Execution stop requested because node has disappeared"
        assert (execution["ComputeState"], execution["DesiredState"]) == (
            {"StateType": FAILED, "Message": gone}, {"StateType": STOPPED, "Message": gone})
        assert response["Job"]["State"] == {"StateType": "Failed", "Message": "not enough nodes to run job. "
                                            "requested: 1, available: 0, suitable: 0."}
    finally:
        node.stop()
        orch.stop()
        fake.close()
