"""Jobs, executions and history as the v1.9.3 orchestrator stores and serves them (pkg/models).

The store keeps every object as the JSON the API sends, in the Go structs' field order, so nothing is translated
on the way out. Two encodings matter to clients and differ on purpose upstream: a job's State.StateType is a
string (JobStateType has MarshalText) while an execution's ComputeState/DesiredState.StateType are plain ints
(ExecutionStateType has no MarshalText), so `"ComputeState": {"StateType": 9}` means Completed.
"""

from __future__ import annotations

import copy
import re
import time
import uuid
from typing import Any

from bacalhau_double.wire import go_time, sorted_map

Obj = dict[str, Any]

# JobStateType names (job_string.go).
PENDING, QUEUED, RUNNING, COMPLETED, FAILED, STOPPED = "Pending", "Queued", "Running", "Completed", "Failed", "Stopped"
TERMINAL_JOB_STATES = (COMPLETED, FAILED, STOPPED)

# ExecutionStateType values, in execution.go's order (names in execution_state_string.go).
(EXEC_UNDEFINED, EXEC_NEW, EXEC_ASK_FOR_BID, EXEC_ASK_FOR_BID_ACCEPTED, EXEC_ASK_FOR_BID_REJECTED, EXEC_BID_ACCEPTED,
 EXEC_RUNNING, EXEC_PUBLISHING, EXEC_BID_REJECTED, EXEC_COMPLETED, EXEC_FAILED, EXEC_CANCELLED) = range(12)
TERMINAL_EXEC_STATES = (EXEC_COMPLETED, EXEC_FAILED, EXEC_CANCELLED, EXEC_ASK_FOR_BID_REJECTED, EXEC_BID_REJECTED)
DISCARDED_EXEC_STATES = (EXEC_ASK_FOR_BID_REJECTED, EXEC_BID_REJECTED, EXEC_CANCELLED, EXEC_FAILED)
# ExecutionDesiredStateType values: Pending, Running, Stopped.
DESIRED_PENDING, DESIRED_RUNNING, DESIRED_STOPPED = 0, 1, 2

DEFAULT_NAMESPACE = "default"
META_PREFIX = "bacalhau.org/"

# orchestrator/events.go topics and messages.
TOPIC_SUBMISSION, TOPIC_STATE_UPDATE, TOPIC_SCHEDULING = "Submission", "State Update", "Scheduling"
TOPIC_EXECUTION = "Execution"
EXEC_RUNNING_MESSAGE = "Running"
EXEC_NODE_GONE_MESSAGE = "Execution stop requested because node has disappeared"
EXEC_STOPPED_BY_JOB_FAILURE = "Execution stopped due to job failure"
EXEC_OVERSUBSCRIBED = "Execution stop requested because there are more executions than needed"
EXEC_NODE_REJECTED = "Execution stop requested because node has been rejected"

_PREFIX_UUID = re.compile(r"^([a-zA-Z])-(\w{8})-\w{4}-\w{4}-\w{4}-\w{12}$")
_UUID = re.compile(r"^(\w{8})-\w{4}-\w{4}-\w{4}-\w{12}$")


def new_job_id() -> str:
    return f"j-{uuid.uuid4()}"


def new_execution_id() -> str:
    return f"e-{uuid.uuid4()}"


def new_evaluation_id() -> str:
    return str(uuid.uuid4())  # SubmitJob uses a bare uuid.NewString(), without the "v-" prefix


def short_uuid(value: str) -> str:
    """idgen.ShortUUID: "j-78faf114-…" → "j-78faf114"; anything else is returned as is."""
    match = _PREFIX_UUID.match(value)
    if match:
        return f"{match.group(1)}-{match.group(2)}"
    match = _UUID.match(value)
    return match.group(1) if match else value


def is_terminal_exec(execution: Obj) -> bool:
    """Execution.IsTerminalState: the desired or the observed state is terminal."""
    return (execution["DesiredState"]["StateType"] == DESIRED_STOPPED
            or execution["ComputeState"]["StateType"] in TERMINAL_EXEC_STATES)


def state(state_type: Any, message: str = "", details: dict[str, str] | None = None) -> Obj:
    """models.State: Message and Details are omitempty."""
    out: Obj = {"StateType": state_type}
    if message:
        out["Message"] = message
    if details:
        out["Details"] = sorted_map(details)
    return out


def event(topic: str, message: str, details: dict[str, str] | None = None) -> Obj:
    """models.Event (Details omitempty); the timestamp is kept in ns until rendered."""
    out: Obj = {"Message": message, "Topic": topic, "Timestamp": time.time_ns()}
    if details:
        out["Details"] = dict(details)
    return out


def error_event(topic: str, message: str, details: dict[str, str] | None = None) -> Obj:
    """Event.WithError plus the attribute details EventFromError adds."""
    return event(topic, message, {"IsError": "true", **(details or {})})


def render_event(ev: Obj) -> Obj:
    out: Obj = {"Message": ev["Message"], "Topic": ev["Topic"], "Timestamp": go_time(ev["Timestamp"])}
    if ev.get("Details"):
        out["Details"] = sorted_map(ev["Details"])
    return out


def render_history(item: Obj) -> Obj:
    """models.JobHistory: ExecutionID omitempty; JobState/ExecutionState (v1.4 leftovers) stay nil."""
    out: Obj = {"SeqNum": item["SeqNum"], "Type": item["Type"], "JobID": item["JobID"],
                "JobVersion": item["JobVersion"]}
    if item.get("ExecutionID"):
        out["ExecutionID"] = item["ExecutionID"]
    out["Event"] = render_event(item["Event"])
    out["Time"] = go_time(item["Time"])
    return out


def empty_run_output() -> Obj:
    # Sic: the stderr key is lower case in RunCommandResult's JSON tags.
    return {"Stdout": "", "StdoutTruncated": False, "stderr": "", "StderrTruncated": False, "ExitCode": 0,
            "ErrorMsg": ""}


def new_execution(job: Obj, node_id: str, eval_id: str, now: int) -> Obj:
    """The scheduler's new execution after CreateExecution: Revision 1, both times now, Normalize()d."""
    return {
        "ID": new_execution_id(), "Namespace": job["Namespace"], "EvalID": eval_id, "Name": "", "NodeID": node_id,
        "JobID": job["ID"], "Job": copy.deepcopy(job), "JobVersion": job["Version"],
        "AllocatedResources": {"Tasks": {}},
        "DesiredState": state(DESIRED_PENDING), "ComputeState": state(EXEC_NEW),
        "PublishedResult": {"Type": ""}, "RunOutput": empty_run_output(),
        "PreviousExecution": "", "NextExecution": "", "FollowupEvalID": "",
        "Revision": 1, "CreateTime": now, "ModifyTime": now,
    }


def _is_zero(value: Any) -> bool:
    return value is None or value == "" or value == 0 or value is False


def merge_fill(new: Obj, old: Obj) -> Obj:
    """mergo.Merge(&new, old) as UpdateExecution uses it: zero fields of the new values take the old ones,
    recursing into nested objects. So a state update without a message keeps the previous message: a completed
    execution still says "Running" (the approval's message), exactly like upstream."""
    out = copy.deepcopy(new)
    for key, old_value in old.items():
        if key not in out:
            out[key] = copy.deepcopy(old_value)
        elif isinstance(out[key], dict) and isinstance(old_value, dict):
            out[key] = merge_fill(out[key], old_value)
        elif _is_zero(out[key]) and not _is_zero(old_value):
            out[key] = copy.deepcopy(old_value)
    return out


def render_execution(execution: Obj) -> Obj:
    """The stored execution with Go's key order and omitempty rules (PartitionIndex, state Message/Details)."""
    out: Obj = {}
    for key in ("ID", "Namespace", "EvalID", "Name", "NodeID", "JobID", "Job", "JobVersion", "AllocatedResources",
                "DesiredState", "ComputeState", "PublishedResult", "RunOutput", "PreviousExecution", "NextExecution",
                "FollowupEvalID", "PartitionIndex", "Revision", "CreateTime", "ModifyTime"):
        if key == "Job" and execution.get("Job") is None:
            continue
        if key == "PartitionIndex" and not execution.get("PartitionIndex"):
            continue
        value = execution.get(key)
        if key in ("DesiredState", "ComputeState"):
            value = execution[key]
            value = state(value["StateType"], value.get("Message", ""), value.get("Details"))
        out[key] = value
    return out
