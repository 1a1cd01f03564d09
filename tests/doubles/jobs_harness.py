"""Job helpers for the tests in this directory: a canary-like job spec, submitting and waiting."""

from __future__ import annotations

import time
from typing import Any

from bacalhau_harness import get, send_json

JOBS = "/api/v1/orchestrator/jobs"
TERMINAL = ("Completed", "Failed", "Stopped")


def docker_job(image: str, argv: list[str], zone: str | None = None, inputs: list[dict[str, Any]] | None = None,
               **task: Any) -> dict[str, Any]:
    """A PutJobRequest body: one docker task, argv as Entrypoint + Parameters, optionally pinned to a zone."""
    spec: dict[str, Any] = {"Type": "batch", "Tasks": [{
        "Name": "main", "Engine": {"Type": "docker", "Params": {"Image": image, "Entrypoint": argv[:1],
                                                                 "Parameters": argv[1:]}},
        **({"InputSources": inputs} if inputs else {}), **task}]}
    if zone is not None:
        spec["Constraints"] = [{"Key": "zone", "Operator": "=", "Values": [zone]}]
    return {"Job": spec}


def local_input(path: str, target: str = "/data", read_write: bool = False) -> dict[str, Any]:
    return {"Source": {"Type": "localDirectory", "Params": {"SourcePath": path, "ReadWrite": read_write}},
            "Target": target}


def submit(port: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> str:
    status, answer = send_json(port, JOBS, body, headers=headers)
    assert status == 200, answer
    return str(answer["JobID"])


def wait_job(port: int, job_id: str, timeout: float = 20.0, headers: dict[str, str] | None = None
             ) -> dict[str, Any]:
    """The GetJobResponse with executions and history once the job is terminal."""
    give_up = time.monotonic() + timeout
    while True:
        status, body = get(port, f"{JOBS}/{job_id}?include=executions,history", headers)
        assert status == 200, body
        if body["Job"]["State"]["StateType"] in TERMINAL:
            return dict(body)
        assert time.monotonic() < give_up, f"job {job_id} still {body['Job']['State']} after {timeout}s"
        time.sleep(0.05)


def run(port: int, body: dict[str, Any], timeout: float = 20.0) -> dict[str, Any]:
    return wait_job(port, submit(port, body), timeout)


def events(response: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(history type, topic, message) of the included history."""
    return [(h["Type"], h["Event"]["Topic"], h["Event"]["Message"]) for h in response["History"]["Items"]]
