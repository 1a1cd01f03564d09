"""What PUT /api/v1/orchestrator/jobs does to a job before storing it (v1.9.3), in the real order:

1. Job.ValidateSubmission on the job as sent (a 400 from echo's validator: Code InternalError, Component
   APIServer, the errors joined by newlines) — pkg/models/job.go, task.go, selector.go, input_source.go;
2. Job.Normalize, then SanitizeSubmission (its warnings are the response's Warnings);
3. the client IDs from the X-Bacalhau-InstallationID/InstanceID headers into Meta, then the job transformers of
   pkg/node/requester.go: IDGenerator (j-<uuid>), NameOptional, RequesterInfo, OrchestratorInstanceID and
   DefaultsApplier (JobDefaults.Batch: CPU 500m, Memory 512Mb, no timeouts);
4. CreateJob: State Pending, Version 1, Revision 1, Normalize again, full Validate (a 400 from the JobStore).
Then the double's own limits (jobspec_limits.py).
"""

from __future__ import annotations

import copy
import re
from typing import Any

from bacalhau_double.api import APIError, echo_error
from bacalhau_double.constraints import constraint_problem
from bacalhau_double.jobmodel import DEFAULT_NAMESPACE, META_PREFIX, PENDING, new_job_id
from bacalhau_double.nodeinfo import parse_bytes
from bacalhau_double.wire import go_duration

Job = dict[str, Any]
JOB_TYPES = ("service", "batch", "daemon", "ops")
_CPU = re.compile(r"^(\d+(\.\d*)?|\.\d+)(m)?$")
_DOMAIN = re.compile(r"\b([a-z0-9]+(-[a-z0-9]+)*\.)+[a-z]{2,}\b")
_ENV_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def _go_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _join(errors: list[str]) -> str:
    return "\n".join(e for e in errors if e)


def _env_problem(env: dict[str, str]) -> str:
    for name in sorted(env):  # Go ranges over the map in random order; the double reports in name order
        value = env[name]
        if name == "":
            return "environment variable name cannot be empty"
        if name != name.upper():
            return f"environment variable '{name}' must be uppercase"
        if not name[0].isalpha():
            return f"environment variable '{name}' must start with a letter"
        if not _ENV_NAME.match(name):
            return f"environment variable '{name}' can only contain letters, numbers, and underscores"
        if name.upper().startswith("BACALHAU_"):
            return f"environment variable '{name}' cannot start with BACALHAU_"
        if value == "":
            return f"environment variable '{name}' cannot have empty value"
    return ""


def cpu_value(text: str) -> float | None:
    match = _CPU.match(text)
    if not match:
        return None
    return float(match.group(1)) / (1000 if match.group(3) else 1)


def resources_problem(resources: dict[str, Any] | None) -> str:
    """ResourcesConfig.Validate (ToResources after lower-casing and dropping spaces)."""
    if resources is None:
        return ""
    values = {k: str(resources.get(k) or "").lower().replace(" ", "").replace("\n", "") for k in
              ("CPU", "Memory", "Disk", "GPU")}
    errors = []
    if values["CPU"] and cpu_value(values["CPU"]) is None:
        errors.append(f"invalid CPU value: {values['CPU']}")
    for key, label in (("Memory", "memory"), ("Disk", "disk")):
        if values[key]:
            try:
                parse_bytes(values[key])
            except ValueError:
                errors.append(f"invalid {label} value: {values[key]}")
    if values["GPU"] and not values["GPU"].isdigit():
        return f"invalid GPU value: {values['GPU']}"  # returned alone: ToResources stops there
    return _join(errors)


def _network_problem(network: dict[str, Any] | None) -> str:
    if network is None:
        return ""
    errors = []
    kind = network.get("Type") or "Default"
    domains = network.get("Domains") or []
    if domains and kind != "HTTP":
        errors.append("domains can only be set for HTTP network mode")
    for domain in domains:
        if not _DOMAIN.search(domain) and not re.fullmatch(r"[0-9.]+|[0-9a-fA-F:]+", domain):
            errors.append(f"invalid domain {_go_quote(domain)}")
    if network.get("Ports") and kind not in ("Host", "Bridge", "Full"):
        errors.append("ports can only be set for Host or Bridge network modes")
    return _join(errors)


def _spec_problem(spec: dict[str, Any] | None) -> str:
    if spec is None:
        return "nil spec config"
    return "missing spec type" if not str(spec.get("Type") or "").strip() else ""


def _timeouts_problem(timeouts: dict[str, Any] | None) -> str:
    if timeouts is None:
        return ""
    errors = []
    for key, label in (("ExecutionTimeout", "execution"), ("QueueTimeout", "queue"), ("TotalTimeout", "total")):
        if (timeouts.get(key) or 0) < 0:
            errors.append(f"invalid {label} timeout value: {go_duration(timeouts[key])}")
    return _join(errors)


def _task_problem(task: dict[str, Any]) -> str:
    """Task.ValidateSubmission."""
    name = task.get("Name") or ""
    errors = ["missing task name" if not name.strip() else "",
              "task name cannot contain null characters" if "\x00" in name else "",
              _env_problem(task.get("Env") or {})]
    if problem := _spec_problem(task.get("Engine")):
        errors.append(f"invalid engine: {problem}")
    if problem := _timeouts_problem(task.get("Timeouts")):
        errors.append(f"invalid timeouts: {problem}")
    if problem := resources_problem(task.get("Resources")):
        errors.append(f"invalid resources: {problem}")
    for source in task.get("InputSources") or []:
        problem = _join(["input source is missing a target" if not (source.get("Target") or "").strip() else "",
                         f"invalid input source: {p}" if (p := _spec_problem(source.get("Source"))) else ""])
        if problem:
            errors.append(f"invalid input sources: {problem}")
            break
    seen_alias: set[str] = set()
    seen_target: set[str] = set()
    for source in task.get("InputSources") or []:
        alias, target = source.get("Alias") or "", source.get("Target") or ""
        if alias and alias in seen_alias:
            errors.append(f"input source with alias '{alias}' already exists")
            break
        if target and target in seen_target:
            errors.append(f"input source with target '{target}' already exists")
            break
        seen_alias.add(alias)
        seen_target.add(target)
    if problem := _network_problem(task.get("Network")):
        errors.append(f"invalid network: {problem}")
    return _join(errors)


def validate_submission(job: Job | None) -> None:
    """Job.ValidateSubmission; raises echo's 400."""
    if job is None:
        raise echo_error(400, "empty/nil job")
    errors = []
    kind = job.get("Type") or ""
    if kind == "":
        errors.append("missing job type")
    elif kind not in JOB_TYPES:
        errors.append(f"invalid job type: {_go_quote(kind)}")
    count = job.get("Count") or 0
    if count < 0:
        errors.append("job count must be >= 0")
    if count > 1 and kind in ("daemon", "ops"):
        errors.append(f"{kind} jobs cannot specify count > 1 as they run on all matching nodes")
    if not job.get("Tasks"):
        errors.append("missing job tasks")
    for index, constraint in enumerate(job.get("Constraints") or []):
        if problem := constraint_problem(constraint):
            errors.append(f"constraint {index + 1} validation failed: {problem}")
    for task in job.get("Tasks") or []:
        if problem := _task_problem(task):
            errors.append(f"task {task.get('Name') or ''} validation failed: {problem}")
    if errors:
        raise echo_error(400, _join(errors))


def _normalize_spec(spec: dict[str, Any] | None) -> dict[str, Any] | None:
    if spec is None:
        return None
    return {"Type": str(spec.get("Type") or "").strip(), "Params": spec.get("Params") or {}}


def normalize(job: Job) -> None:
    """Job.Normalize and Task.Normalize: empty collections instead of nil, trimmed types, lower-case resources."""
    for key in ("Meta", "Labels"):
        job[key] = job.get(key) or {}
    job["Constraints"] = job.get("Constraints") or []
    job["Tasks"] = job.get("Tasks") or []
    job["Namespace"] = job.get("Namespace") or DEFAULT_NAMESPACE
    job["Name"] = job.get("Name") or job.get("ID") or ""
    if job.get("Type") in ("daemon", "ops"):
        job["Count"] = 0
    for task in job["Tasks"]:
        for key in ("Meta", "Env"):
            task[key] = task.get(key) or {}
        task["InputSources"] = [{"Source": _normalize_spec(s.get("Source")), "Alias": (s.get("Alias") or "").strip(),
                                 "Target": (s.get("Target") or "").strip()} for s in task.get("InputSources") or []]
        task["ResultPaths"] = task.get("ResultPaths") or []
        task["Resources"] = {k: str(v).lower().replace(" ", "").replace("\n", "")
                             for k, v in (task.get("Resources") or {}).items() if v}
        task["Publisher"] = _normalize_spec(task.get("Publisher") or {})
        network = task.get("Network") or {}
        task["Network"] = {"Type": network.get("Type") or "Default",
                           "Domains": [d.strip().lower() for d in network.get("Domains") or []],
                           "Ports": network.get("Ports") or []}
        task["Timeouts"] = {k: v for k, v in (task.get("Timeouts") or {}).items() if v}
        task["Engine"] = _normalize_spec(task.get("Engine"))


def sanitize(job: Job) -> list[str] | None:
    """Job.SanitizeSubmission: the warnings (None, Go's nil slice, when there are none)."""
    warnings: list[str] = []
    if (job.get("State") or {}).get("StateType", "Undefined") != "Undefined":
        warnings.append("job state is ignored when submitting a job")
    job["State"] = {"StateType": "Undefined"}
    for key, label in (("Revision", "revision"), ("Version", "version"), ("CreateTime", "create time"),
                       ("ModifyTime", "modify time")):
        if job.get(key):
            warnings.append(f"job {label} is ignored when submitting a job")
        job[key] = 0
    if job.get("Type") in ("batch", "ops") and job.get("ID"):
        warnings.append("job ID is ignored when submitting a batch job")
        job["ID"] = ""
    if len(job["Tasks"]) > 1:
        warnings.append("only one task is supported per job")
        job["Tasks"] = job["Tasks"][:1]
    for key in sorted(job["Meta"]):
        if key.startswith(META_PREFIX):
            warnings.append(f"job meta key {_go_quote(key)} is reserved and will be ignored")
            del job["Meta"][key]
    return warnings or None


def transform(job: Job, node_id: str, instance_id: str, headers: Any, defaults: dict[str, Any], now: int) -> None:
    """The client IDs, the requester's job transformers and CreateJob's own fields."""
    for header, key in (("X-Bacalhau-InstallationID", "client.installation.id"),
                        ("X-Bacalhau-InstanceID", "client.instance.id")):
        if headers.get(header):
            job["Meta"][META_PREFIX + key] = headers.get(header)
    job["ID"] = job.get("ID") or new_job_id()
    job["Name"] = job["Name"] or job["ID"]
    job["Meta"][META_PREFIX + "orchestrator.id"] = node_id
    job["Meta"][META_PREFIX + "requester.id"] = node_id
    if instance_id:
        job["Meta"][META_PREFIX + "server.instance.id"] = instance_id
    if job.get("Type") == "batch":
        job["Priority"] = job.get("Priority") or defaults.get("Priority", 0)
        for task in job["Tasks"]:
            for key, value in defaults.get("Resources", {}).items():
                if value and not task["Resources"].get(key):
                    task["Resources"][key] = str(value).lower().replace(" ", "")
            for key in ("ExecutionTimeout", "TotalTimeout"):
                if task["Timeouts"].get(key, 0) <= 0 and defaults.get(key):
                    task["Timeouts"][key] = defaults[key]
    job.update(State={"StateType": PENDING}, Version=1, Revision=1, CreateTime=now, ModifyTime=now)


def validate_stored(job: Job) -> None:
    """The parts of Job.Validate that CreateJob adds to ValidateSubmission (a JobStore 400)."""
    errors = []
    if " " in job["ID"]:
        errors.append("job ID contains a space")
    if "\x00" in job["Name"]:
        errors.append("job Name contains a null character")
    for task in job["Tasks"]:
        timeouts = task["Timeouts"]
        total = timeouts.get("TotalTimeout", 0)
        execution, queue = timeouts.get("ExecutionTimeout", 0), timeouts.get("QueueTimeout", 0)
        if total > 0 and execution + queue > total:
            errors.append(f"task {task['Name']} validation failed: task timeouts validation failed: execution timeout "
                          f"{go_duration(execution or total)} and queue timeout {go_duration(queue)} should be less "
                          f"than total timeout {go_duration(total)}")
    if errors:
        raise APIError(400, _join(errors), "BadRequest", "JobStore")


def render(job: Job) -> Job:
    """The stored job in models.Job's field order, with Task's omitempty fields dropped when empty."""
    tasks = []
    for task in job["Tasks"]:
        out: dict[str, Any] = {"Name": task.get("Name") or "", "Engine": _render_spec(task["Engine"]),
                               "Publisher": _render_spec(task["Publisher"])}
        for key in ("Env", "Meta"):
            if task[key]:
                out[key] = {k: task[key][k] for k in sorted(task[key])}
        if task["InputSources"]:
            out["InputSources"] = [{"Source": _render_spec(s["Source"]), "Alias": s["Alias"], "Target": s["Target"]}
                                   for s in task["InputSources"]]
        if task["ResultPaths"]:
            out["ResultPaths"] = task["ResultPaths"]
        out["Resources"] = {k: task["Resources"][k] for k in ("CPU", "Memory", "Disk", "GPU") if k in task["Resources"]}
        network: dict[str, Any] = {"Type": task["Network"]["Type"]}
        for key in ("Domains", "Ports"):
            if task["Network"][key]:
                network[key] = task["Network"][key]
        out["Network"] = network
        out["Timeouts"] = {k: task["Timeouts"][k] for k in ("ExecutionTimeout", "QueueTimeout", "TotalTimeout")
                           if task["Timeouts"].get(k)}
        tasks.append(out)
    constraints = []
    for c in job["Constraints"]:
        item: dict[str, Any] = {"Key": c.get("Key") or "", "Operator": c.get("Operator") or ""}
        if c.get("Values"):
            item["Values"] = c["Values"]
        constraints.append(item)
    return {"ID": job["ID"], "Name": job["Name"], "Namespace": job["Namespace"], "Type": job["Type"],
            "Priority": job.get("Priority") or 0, "Count": job.get("Count") or 0, "Constraints": constraints,
            "Meta": {k: job["Meta"][k] for k in sorted(job["Meta"])},
            "Labels": {k: job["Labels"][k] for k in sorted(job["Labels"])}, "Tasks": tasks, "State": job["State"],
            "Version": job["Version"], "Revision": job["Revision"], "CreateTime": job["CreateTime"],
            "ModifyTime": job["ModifyTime"]}


def _sorted_any(value: Any) -> Any:
    # interface{} maps come back out of Go sorted by key, at every depth.
    if isinstance(value, dict):
        return {k: _sorted_any(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted_any(v) for v in value]
    return value


def _render_spec(spec: dict[str, Any] | None) -> dict[str, Any] | None:
    if spec is None:
        return None
    out: dict[str, Any] = {"Type": spec["Type"]}
    if spec.get("Params"):
        out["Params"] = _sorted_any(copy.deepcopy(spec["Params"]))
    return out
