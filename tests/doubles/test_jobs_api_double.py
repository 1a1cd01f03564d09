"""PUT/GET /api/v1/orchestrator/jobs of the orchestrator double: validation, lookups, errors and authorization,
against Bacalhau v1.9.3 (pkg/publicapi/endpoint/orchestrator/job.go, pkg/models, pkg/authz). No compute node:
jobs fail at scheduling, which these tests do not look at."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bacalhau_harness import NATS_SERVER, bearer, get, request, send_json, start_orchestrator
from jobs_harness import JOBS, docker_job, submit, wait_job

pytestmark = pytest.mark.skipif(not os.path.exists(NATS_SERVER), reason="nats-server is not installed")


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    orch, _ = start_orchestrator(tmp_path_factory.mktemp("jobs-api") / "orch")
    try:
        yield orch.api_port
    finally:
        orch.stop()


def _echo_400(message: str) -> dict[str, Any]:
    """What echo's validator answers for a job that fails Job.ValidateSubmission."""
    return {"Status": 400, "Message": message, "RequestID": "", "Code": "InternalError", "Component": "APIServer"}


@pytest.mark.parametrize(("change", "message"), [
    (lambda j: j.pop("Type"), "missing job type"),
    (lambda j: j.update(Type="cron"), 'invalid job type: "cron"'),
    (lambda j: j.update(Tasks=[]), "missing job tasks"),
    (lambda j: j.update(Count=-1), "job count must be >= 0"),
    (lambda j: j["Tasks"][0].update(Name=""), "task  validation failed: missing task name"),
    (lambda j: j["Tasks"][0].pop("Engine"), "task main validation failed: invalid engine: nil spec config"),
    (lambda j: j["Tasks"][0].update(Resources={"CPU": "lots"}), "task main validation failed: invalid resources: "
                                                                "invalid CPU value: lots"),
    (lambda j: j["Tasks"][0].update(Env={"lower": "x"}), "task main validation failed: environment variable "
                                                         "'lower' must be uppercase"),
    (lambda j: j["Tasks"][0].update(InputSources=[{"Source": {"Type": "localDirectory"}}]),
     "task main validation failed: invalid input sources: input source is missing a target"),
    (lambda j: j.update(Constraints=[{"Key": "zone", "Operator": "in"}]),
     "constraint 1 validation failed: selector values cannot be empty for In or NotIn operators"),
    (lambda j: j.update(Constraints=[{"Key": "", "Operator": "=", "Values": ["a", "b"]}]),
     "constraint 1 validation failed: selector key cannot be blank\nselector values must have exactly one value "
     "for other operators"),
    (lambda j: j.update(Type="", Tasks=[]), "missing job type\nmissing job tasks"),
])
def test_submission_validation_errors(port: int, change: Any, message: str) -> None:
    body = docker_job("alpine:3.20", ["echo"])
    change(body["Job"])
    assert send_json(port, JOBS, body) == (400, _echo_400(message))


def test_body_binding(port: int) -> None:
    assert send_json(port, JOBS, {}) == (400, _echo_400("empty/nil job"))
    status, body = send_json(port, JOBS, {"Job": {"Type": "batch", "Count": "one"}})
    assert status == 400 and body["Message"].startswith("code=400, message=Unmarshal type error: expected=int, "
                                                        "got=string, field=Count")
    status, _, raw = request(port, JOBS, method="PUT")  # a form body (urllib's default type): no Job bound
    assert status == 400 and b'"Message":"empty/nil job"' in raw


@pytest.mark.parametrize(("change", "fragment"), [
    (lambda j: j.update(Constraint=[]), "unknown field 'Constraint' in Job"),
    (lambda j: j["Tasks"][0]["Engine"]["Params"].update(Cmd=["x"]), "refuses docker engine param 'Cmd'"),
    (lambda j: j["Tasks"][0]["Engine"].update(Type="wasm"), "runs docker jobs only"),
    (lambda j: j.update(Type="ops"), "runs batch jobs only"),
    (lambda j: j.update(Count=2), "runs jobs with Count 1 only"),
    (lambda j: j["Tasks"][0].update(Publisher={"Type": "local"}), "publishes no results"),
    (lambda j: j["Tasks"][0].update(InputSources=[{"Source": {"Type": "s3", "Params": {}}, "Target": "/i"}]),
     "mounts local input sources only"),
    (lambda j: j["Tasks"][0].update(Timeouts={"QueueTimeout": 60}), "implements ExecutionTimeout only"),
    (lambda j: j["Tasks"][0].update(Env={"TOKEN": "env:HOST_TOKEN"}), "does not resolve host environment"),
    (lambda j: j.update(Constraints=[{"Key": "zone", "Operator": "In", "Values": ["a"]}]),
     'the real orchestrator accepts it, then cannot rank any node and leaves the job Pending forever: operator: '
     'Unsupported value: "In": supported values: "in", "notin", "=", "==", "!=", "gt", "lt", "exists", "!"'),
])
def test_what_the_double_cannot_honour_is_refused(port: int, change: Any, fragment: str) -> None:
    body = docker_job("alpine:3.20", ["echo"])
    change(body["Job"])
    status, answer = send_json(port, JOBS, body)
    assert status == 400 and answer["Component"] == "TestDouble" and answer["Code"] == "BadRequest"
    assert fragment in answer["Message"]


def test_put_response_warnings_and_defaults(port: int) -> None:
    status, answer = send_json(port, JOBS, docker_job("alpine:3.20", ["echo"]))
    assert status == 200 and list(answer) == ["JobID", "EvaluationID", "Warnings"] and answer["Warnings"] is None
    body = docker_job("alpine:3.20", ["echo"])
    body["Job"].update(ID="mine", Version=3, Meta={"bacalhau.org/x": "1", "team": "edge"})
    body["Job"]["Tasks"].append(body["Job"]["Tasks"][0])
    status, answer = send_json(port, JOBS, body, method="POST")
    assert status == 200 and answer["Warnings"] == [
        "job version is ignored when submitting a job", "job ID is ignored when submitting a batch job",
        "only one task is supported per job", 'job meta key "bacalhau.org/x" is reserved and will be ignored']
    job = wait_job(port, answer["JobID"])["Job"]
    assert job["Name"] == "mine" and job["ID"] != "mine" and job["Meta"]["team"] == "edge"  # Name = the given ID
    assert "bacalhau.org/x" not in job["Meta"] and len(job["Tasks"]) == 1


def test_names_ids_and_prefixes(port: int) -> None:
    body = docker_job("alpine:3.20", ["echo"])
    body["Job"]["Name"] = "canary"
    job_id = submit(port, body, headers={"X-Bacalhau-InstanceID": "cli-1"})
    job = wait_job(port, job_id)["Job"]
    assert job["Meta"]["bacalhau.org/client.instance.id"] == "cli-1"
    assert get(port, f"{JOBS}/canary")[1]["Job"]["ID"] == job_id  # by name in the default namespace
    assert get(port, f"{JOBS}/{job_id[:10]}")[1]["Job"]["ID"] == job_id  # a short ID is a prefix
    assert get(port, f"{JOBS}/canary?namespace=other")[0] == 404
    assert get(port, f"{JOBS}/j-nope") == (404, {"Status": 404, "Message": "job not found: j-nope", "RequestID": "",
                                                 "Code": "NotFound", "Component": "JobStore"})
    assert get(port, f"{JOBS}/j-")[1]["Code"] == "MultipleJobsFound"
    assert get(port, f"{JOBS}/{job_id}?job_version=2")[1]["Message"] == f"job version 2 not found for job {job_id}"
    assert list(get(port, f"{JOBS}/{job_id}?include=executions,bogus")[1]) == ["Job", "Executions"]
    # The same spec under the same name: upstream refuses it without Force (an update otherwise).
    assert send_json(port, JOBS, body) == (500, {
        "Status": 500, "Message": f"no changes detected for new job spec. Job Name: 'canary', Job Id: '{job_id}'",
        "RequestID": "", "Code": "", "Component": "Bacalhau", "Hint": "Use the --force flag to override this warning"})
    assert send_json(port, JOBS, {**body, "Force": True})[0] == 501  # the double does not version jobs


def test_history_filters_and_unsupported_routes(port: int) -> None:
    job_id = submit(port, docker_job("alpine:3.20", ["echo"]))
    wait_job(port, job_id)
    status, history = get(port, f"{JOBS}/{job_id}/history?event_type=job")
    assert status == 200 and [h["Event"]["Message"] for h in history["Items"]][0] == "Job submitted"
    assert {h["Type"] for h in history["Items"]} == {"JobLevel"} and history["NextToken"] == ""
    assert get(port, f"{JOBS}/{job_id}/history?event_type=bogus")[1]["Message"] == (
        "Key: 'ListJobHistoryRequest.EventType' Error:Field validation for 'EventType' failed on the 'oneof' tag")
    assert get(port, f"{JOBS}/{job_id}/executions?limit=x")[1]["Message"].startswith("code=400, message=strconv")
    for method, path in (("GET", JOBS), ("DELETE", f"{JOBS}/{job_id}"), ("GET", f"{JOBS}/{job_id}/logs")):
        assert request(port, path, method=method)[0] == 501


READER, WRITER = "reader-key-" + "e5" * 10, "writer-key-" + "f6" * 10
USERS = {"Users": [{"Alias": "reader", "APIKey": READER, "Capabilities": [{"Actions": ["read:job"]}]},
                   {"Alias": "writer", "APIKey": WRITER, "Capabilities": [{"Actions": ["write:job", "read:job"]}]}]}


def test_jobs_need_job_capabilities(tmp_path: Path) -> None:
    orch, _ = start_orchestrator(tmp_path / "orch", api_auth=USERS)
    try:
        port = orch.api_port
        status, body = send_json(port, JOBS, docker_job("alpine:3.20", ["echo"]))
        assert (status, body["Details"]) == (401, {"reason": "Missing Authorization header"})
        status, body = send_json(port, JOBS, docker_job("alpine:3.20", ["echo"]), headers=bearer(READER))
        assert (status, body["Message"], body["Details"]) == (403, "Request Forbidden", {
            "reason": "user 'reader' does not have the required capability 'write:job'"})
        job_id = submit(port, docker_job("alpine:3.20", ["echo"]), headers=bearer(WRITER))
        assert wait_job(port, job_id, headers=bearer(READER))["Job"]["ID"] == job_id
        assert get(port, f"{JOBS}/{job_id}/executions")[0] == 401
        assert get(port, "/api/v1/orchestrator/nodes", bearer(READER))[1]["Details"] == {
            "reason": "user 'reader' does not have the required capability 'read:node'"}
    finally:
        logs = orch.stop()
    assert READER not in logs and WRITER not in logs
