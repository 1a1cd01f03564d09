"""Submit one canary job per node through Bacalhau's job API, wait (bounded) and judge each node's answer.

Wire shapes (Bacalhau v1.9.3, pkg/publicapi/apimodels and pkg/models): `PUT /api/v1/orchestrator/jobs` takes
`{"Job": ...}` and answers `{"JobID", "EvaluationID", "Warnings"}`; `GET .../jobs/<id>` answers `{"Job": {...,
"State": {"StateType": "Completed", "Message"}}}` (a string); `GET .../jobs/<id>/executions` answers `{"Items":
[Execution]}`, whose `ComputeState.StateType` is a number (ExecutionStateType has no text form) and whose
`RunOutput` is `{"Stdout", "StdoutTruncated", "stderr", "StderrTruncated", "ExitCode", "ErrorMsg"}` (sic).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from fleetdeploy.canary.job import canary_job, judge_output
from fleetdeploy.jsondoc import JSONObject, as_list, as_object
from fleetdeploy.orchestrator.api import OrchestratorApi, OrchestratorApiError

JOBS_PATH = "/api/v1/orchestrator/jobs"
TERMINAL_JOB_STATES = frozenset({"Completed", "Failed", "Stopped"})
EXECUTION_COMPLETED = 9  # models.ExecutionStateCompleted
EXECUTION_STATE_NAMES = ("Undefined", "New", "AskForBid", "AskForBidAccepted", "AskForBidRejected", "BidAccepted",
                         "Running", "Publishing", "BidRejected", "Completed", "Failed", "Cancelled")
POLL_INTERVAL_S = 1.0


@dataclass(frozen=True)
class CanaryTarget:
    node: str  # the inventory host name (Bacalhau's node name)
    instance_id: str  # the node's `instance-id` label, which pins the job


@dataclass(frozen=True)
class NodeCanary:
    """One node's canary: did its job run there, was its answer right, how long it took, and why not."""

    node: str
    job_id: str  # "" when the job was not accepted
    ran: bool  # an execution on the node finished with an exit code
    right: bool
    seconds: float | None  # from submission to the job's end; None when it did not end in time
    rows: int | None
    reason: str  # "" when right

    @property
    def ok(self) -> bool:
        return self.ran and self.right


@dataclass(frozen=True)
class CanarySettings:
    fleet: str
    image: str
    data_dir: str
    timeout_s: float
    max_age_s: float


Progress = Callable[[str, str, str], None]  # (node, state, detail)


def run_canary(api: OrchestratorApi, settings: CanarySettings, targets: list[CanaryTarget], progress: Progress,
               clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], None] = time.sleep) -> list[NodeCanary]:
    """Every node's canary, in the order of `targets`; one node's failure never stops the others."""
    results: dict[str, NodeCanary] = {}
    submitted: dict[str, tuple[str, float]] = {}  # node -> (job id, submitted at)
    job_timeout = max(1, int(settings.timeout_s))
    run = time.strftime("%Y%m%dt%H%M%S", time.gmtime()) + f"-{os.getpid()}"
    for target in targets:
        job = canary_job(settings.fleet, target.node, target.instance_id, settings.image, settings.data_dir,
                         job_timeout, run)
        try:
            answer = as_object(api.call(JOBS_PATH, "PUT", {"Job": job}))
        except OrchestratorApiError as exc:
            results[target.node] = NodeCanary(target.node, "", False, False, None, None, f"not submitted: {exc}")
            progress(target.node, "failed", "not submitted")
            continue
        job_id = str(answer.get("JobID") or "")
        if not job_id:
            results[target.node] = NodeCanary(target.node, "", False, False, None, None,
                                              "not submitted: the orchestrator answered without a JobID")
            progress(target.node, "failed", "not submitted")
            continue
        submitted[target.node] = (job_id, clock())
        progress(target.node, "running", f"job {job_id}")
    deadline = clock() + settings.timeout_s
    last: dict[str, tuple[str, str]] = {}  # node -> the job's state and message when last read
    while submitted:
        for node, (job_id, started) in list(submitted.items()):
            if clock() >= deadline:
                break  # a slow API must not stretch the wait by a request per node
            try:
                state, message = _job_state(api, job_id)
            except OrchestratorApiError as exc:
                state, message = "unknown", str(exc)
            last[node] = (state, message)
            if state in TERMINAL_JOB_STATES:
                results[node] = _finished(api, node, job_id, state, message, clock() - started, settings.max_age_s)
                del submitted[node]
                progress(node, "ok" if results[node].ok else "failed", results[node].reason or "right")
        if not submitted or clock() >= deadline:
            break
        sleep(POLL_INTERVAL_S)
    for node, (job_id, _) in submitted.items():
        state, message = last.get(node, ("not read", ""))
        why = f"did not finish within {settings.timeout_s:g} s (job {state}" + (f": {message})" if message else ")")
        results[node] = NodeCanary(node, job_id, False, False, None, None, why)
        progress(node, "failed", "timed out")
    return [results[t.node] for t in targets]


def _job_state(api: OrchestratorApi, job_id: str) -> tuple[str, str]:
    job = as_object(as_object(api.call(f"{JOBS_PATH}/{job_id}")).get("Job"))
    state = as_object(job.get("State"))
    return str(state.get("StateType") or ""), str(state.get("Message") or "")


def _finished(api: OrchestratorApi, node: str, job_id: str, state: str, message: str, seconds: float,
              max_age_s: float) -> NodeCanary:
    try:
        items = as_list(as_object(api.call(f"{JOBS_PATH}/{job_id}/executions")).get("Items"))
    except OrchestratorApiError as exc:
        return NodeCanary(node, job_id, False, False, round(seconds, 1), None, f"executions not readable: {exc}")
    executions = [as_object(item) for item in items]
    done = next((e for e in executions if _execution_state(e) == EXECUTION_COMPLETED), None)
    if done is None:
        why = _failure(executions) or message or f"job {state}"
        return NodeCanary(node, job_id, False, False, round(seconds, 1), None, why)
    output = as_object(done.get("RunOutput"))
    verdict = judge_output(str(output.get("Stdout") or ""), _int(output.get("ExitCode")),
                           str(output.get("stderr") or ""), max_age_s)
    return NodeCanary(node, job_id, True, verdict.right, round(seconds, 1), verdict.rows, verdict.reason)


def _execution_state(execution: JSONObject) -> int:
    return _int(as_object(execution.get("ComputeState")).get("StateType"))


def _failure(executions: list[JSONObject]) -> str:
    """Why the job's executions ended without a result (the last one that says so), as Bacalhau put it."""
    for execution in reversed(executions):
        compute = as_object(execution.get("ComputeState"))
        output = as_object(execution.get("RunOutput"))
        text = str(compute.get("Message") or output.get("ErrorMsg") or "")
        if text:
            code = _int(compute.get("StateType"))
            name = EXECUTION_STATE_NAMES[code] if 0 <= code < len(EXECUTION_STATE_NAMES) else str(code)
            return f"execution {name}: {' '.join(text.split())[:300]}"
    return ""


def _int(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return -1
