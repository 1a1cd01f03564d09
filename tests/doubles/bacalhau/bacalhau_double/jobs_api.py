"""The job endpoints of pkg/publicapi/endpoint/orchestrator (job.go, v1.9.3) that a canary needs.

- PUT|POST /api/v1/orchestrator/jobs → apimodels.PutJobResponse {"JobID", "EvaluationID", "Warnings"} (Warnings
  is null without warnings: Go's nil slice);
- GET /api/v1/orchestrator/jobs/:id → GetJobResponse {"Job"[, "History"][, "Executions"]}; ?include=history,
  executions (comma-separated, unknown entries ignored), ?job_version, ?namespace; :id is a name (in the
  namespace) or an ID, or an ID prefix;
- GET …/jobs/:id/executions → ListJobExecutionsResponse {"NextToken": "", "Items": [...]} (order_by
  create_time|created_at (default) | modify_time|modified_at, reverse, limit);
- GET …/jobs/:id/history → ListJobHistoryResponse (event_type all|job|execution, execution_id prefix, since,
  limit up to 100 by default; the double does not paginate further).
The other job routes upstream registers answer 501: the double does not list, stop, diff, rerun or stream jobs.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

from bacalhau_double import jobspec
from bacalhau_double.api import APIError, Request, Router, echo_error
from bacalhau_double.jobdecode import parse_put_job
from bacalhau_double.jobmodel import META_PREFIX, new_evaluation_id, render_execution, render_history
from bacalhau_double.jobspec_limits import check_limits
from bacalhau_double.jobstore import JobStore
from bacalhau_double.nodes_api import _bind_bool, _bind_error, _bind_uint32, _go_quote
from bacalhau_double.scheduler import Scheduler
from bacalhau_double.wire import now_ns

Obj = dict[str, Any]
JOBS = "/api/v1/orchestrator/jobs"
HISTORY_LIMIT = 100


def _bind_int(request: Request, name: str, signed: bool) -> int:
    raw = request.query_value(name)
    if raw is None or raw == "":
        return 0
    if not re.fullmatch(r"-?[0-9]+" if signed else r"[0-9]+", raw):
        parser = "ParseInt" if signed else "ParseUint"
        raise _bind_error(f"strconv.{parser}: parsing {_go_quote(raw)}: invalid syntax")
    return int(raw)


def _comparable(job: Obj) -> Obj:
    """Job.CompareWith ignores these fields and the reserved bacalhau.org/ Meta keys."""
    out = {k: v for k, v in copy.deepcopy(job).items()
           if k not in ("ID", "State", "Version", "Revision", "CreateTime", "ModifyTime")}
    out["Meta"] = {k: v for k, v in out["Meta"].items() if not k.startswith(META_PREFIX)}
    return out


class JobsAPI:
    def __init__(self, store: JobStore, scheduler: Scheduler, node_id: str, instance_id: str,
                 defaults: dict[str, Any]) -> None:
        self.store, self.scheduler = store, scheduler
        self.node_id, self.instance_id, self.defaults = node_id, instance_id, defaults

    def put_job(self, request: Request) -> Obj:
        job, force = parse_put_job(request.body, request.headers.get("Content-Type") or "")
        jobspec.validate_submission(job)
        assert job is not None
        jobspec.normalize(job)
        warnings = jobspec.sanitize(job)
        jobspec.transform(job, self.node_id, self.instance_id, request.headers, self.defaults, now_ns())
        jobspec.normalize(job)
        existing = self.store.by_name(job["Name"], job["Namespace"])
        if existing is not None:
            if not force and _comparable(existing) == _comparable(jobspec.render(job)):
                raise APIError(500, f"no changes detected for new job spec. Job Name: '{job['Name']}', Job Id: "
                                    f"'{existing['ID']}'", "", "Bacalhau", "Use the --force flag to override this "
                                                                          "warning")
            raise APIError(501, f"the test double does not update jobs: a job named {job['Name']!r} exists in "
                                f"namespace {job['Namespace']!r} (the real orchestrator would make this version 2 "
                                "of it); submit without Name, or with a new one", "NotImplemented", "TestDouble")
        jobspec.validate_stored(job)
        check_limits(job)
        rendered = jobspec.render(job)
        self.store.create_job(rendered)
        self.scheduler.submitted(rendered["ID"])
        return {"JobID": rendered["ID"], "EvaluationID": new_evaluation_id(), "Warnings": warnings}

    def _job(self, request: Request) -> Obj:
        return self.store.get_by_id_or_name(request.params.get("id", ""), request.query_value("namespace") or "")

    def _executions(self, job: Obj, version: int, all_versions: bool = False) -> list[Obj]:
        executions = self.store.executions(job["ID"])
        if not all_versions:
            executions = [e for e in executions if e["JobVersion"] == (version or job["Version"])]
        return [render_execution(e) for e in executions]

    def get_job(self, request: Request) -> Obj:
        version = _bind_int(request, "job_version", signed=False)
        _bind_uint32(request, "limit")
        job = self._job(request)
        if version and version != job["Version"]:
            raise APIError(404, f"job version {version} not found for job {job['ID']}", "NotFound", "JobStore")
        response: Obj = {"Job": job}
        wanted = [part.strip() for part in (request.query_value("include") or "").split(",")]
        if "history" in wanted:
            items = [h for h in self.store.history(job["ID"]) if h["JobVersion"] == job["Version"]]
            response["History"] = {"NextToken": "", "Items": [render_history(h) for h in items[:HISTORY_LIMIT]]}
        if "executions" in wanted:
            response["Executions"] = {"NextToken": "", "Items": self._executions(job, version)}
        return response

    def executions(self, request: Request) -> Obj:
        version = _bind_int(request, "job_version", signed=False)
        all_versions = _bind_bool(request, "all_job_versions")
        limit = _bind_uint32(request, "limit")
        reverse = _bind_bool(request, "reverse")
        job = self._job(request)
        items = self._executions(job, version, all_versions)
        order_by = request.query_value("order_by") or ""
        key = {"": "CreateTime", "create_time": "CreateTime", "created_at": "CreateTime",
               "modify_time": "ModifyTime", "modified_at": "ModifyTime"}.get(order_by)
        if key is not None:  # an unknown order_by leaves the store order, as upstream
            items.sort(key=lambda e: e[key], reverse=reverse)
        return {"NextToken": "", "Items": items[:limit] if limit else items}

    def history(self, request: Request) -> Obj:
        since = _bind_int(request, "since", signed=True)
        limit = _bind_uint32(request, "limit") or HISTORY_LIMIT
        version = _bind_int(request, "job_version", signed=False)
        all_versions = _bind_bool(request, "all_job_versions")
        event_type = request.query_value("event_type") or ""
        for field, bad, tag in (("Since", since < 0, "min"), ("EventType", event_type not in ("", "all", "job",
                                                                                               "execution"), "oneof")):
            if bad:
                raise echo_error(400, f"Key: 'ListJobHistoryRequest.{field}' Error:Field validation for '{field}' "
                                      f"failed on the '{tag}' tag")
        if request.query_value("next_token"):
            raise APIError(400, "the test double does not paginate job history (next_token)", "BadRequest",
                           "TestDouble")
        job = self._job(request)
        execution_id = request.query_value("execution_id") or ""
        items = [h for h in self.store.history(job["ID"])
                 if h.get("ExecutionID", "").startswith(execution_id) and h["Time"] // 1_000_000_000 >= since
                 and not (event_type == "job" and h["Type"] == "ExecutionLevel")
                 and not (event_type == "execution" and h["Type"] == "JobLevel")
                 and (all_versions or h["JobVersion"] == (version or job["Version"]))]
        return {"NextToken": "", "Items": [render_history(h) for h in items[:limit]]}


def _not_supported(what: str) -> Callable[[Request], Any]:
    def handler(_request: Request) -> Any:
        raise APIError(501, f"the test double does not {what}", "NotImplemented", "TestDouble")
    return handler


def job_routes(router: Router, jobs: JobsAPI) -> None:
    router.add("PUT", JOBS, jobs.put_job)
    router.add("POST", JOBS, jobs.put_job)
    router.add("GET", JOBS, _not_supported("list jobs"))
    router.add("PUT", JOBS + "/diff", _not_supported("diff jobs"))
    router.add("GET", JOBS + "/:id", jobs.get_job)
    router.add("DELETE", JOBS + "/:id", _not_supported("stop jobs"))
    router.add("PUT", JOBS + "/:id/rerun", _not_supported("rerun jobs"))
    router.add("GET", JOBS + "/:id/history", jobs.history)
    router.add("GET", JOBS + "/:id/executions", jobs.executions)
    for tail, what in (("versions", "keep job versions"), ("results", "publish results"),
                       ("logs", "stream logs (read RunOutput)")):
        router.add("GET", f"{JOBS}/:id/{tail}", _not_supported(what))
