"""The orchestrator's job store (pkg/jobstore/boltdb of v1.9.3, the parts the job API and the scheduler use).

Persisted as DataDir/orchestrator/jobs.double.json, like the real BoltDB file and like the double's node store:
a job and its executions and history can still be read after an orchestrator restart. Lookups follow upstream:
by name in the namespace first, then by ID, where anything that is not a full `x-<uuid>` is a prefix
("job not found: <id>" / "multiple jobs found for id <id>"); an empty ID is a prefix of every job.
Executions keep the whole job of their creation time, as the real store does, so the API returns it too.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

from bacalhau_double.api import APIError
from bacalhau_double.jobmodel import (
    DEFAULT_NAMESPACE,
    TERMINAL_EXEC_STATES,
    TERMINAL_JOB_STATES,
    is_terminal_exec,
    merge_fill,
    short_uuid,
)
from bacalhau_double.wire import now_ns

log = logging.getLogger("bacalhau")
Obj = dict[str, Any]


class StoreConflict(Exception):
    """An update whose condition does not hold (the real store returns an error the caller only logs)."""


def job_not_found(job_id: str) -> APIError:
    return APIError(404, f"job not found: {job_id}", "NotFound", "JobStore")


class JobStore:
    def __init__(self, path: str | None) -> None:
        self._lock = threading.RLock()
        self._path = path
        self._jobs: dict[str, Obj] = {}
        self._executions: dict[str, list[Obj]] = {}
        self._history: dict[str, list[Obj]] = {}
        self._load()

    def _load(self) -> None:
        if not self._path or not os.path.exists(self._path):
            return
        try:
            with open(self._path, encoding="utf-8") as handle:
                data = json.load(handle)
            self._jobs = {job["ID"]: job for job in data["jobs"]}
            self._executions, self._history = data["executions"], data["history"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable job store %s: %s", self._path, exc)

    def _persist(self) -> None:
        if not self._path:
            return
        tmp = self._path + ".tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as handle:
                json.dump({"jobs": list(self._jobs.values()), "executions": self._executions,
                           "history": self._history}, handle)
            os.replace(tmp, self._path)
        except OSError as exc:  # keep serving from memory, as the node store does
            log.error("failed to persist jobs to %s: %s", self._path, exc.strerror)

    # ---- jobs ----

    def create_job(self, job: Obj) -> None:
        with self._lock:
            self._jobs[job["ID"]] = copy.deepcopy(job)
            self._executions[job["ID"]] = []
            self._history[job["ID"]] = []
            self._persist()

    def by_name(self, name: str, namespace: str) -> Obj | None:
        namespace = namespace or DEFAULT_NAMESPACE
        with self._lock:
            job = next((j for j in self._jobs.values() if j["Name"] == name and j["Namespace"] == namespace), None)
            return copy.deepcopy(job) if job else None

    def get(self, job_id: str) -> Obj:
        """GetJob: exact for full IDs, a prefix otherwise. Raises the 404/500 APIError."""
        with self._lock:
            if short_uuid(job_id) == job_id:
                found = [k for k in self._jobs if k.startswith(job_id)]
                if len(found) > 1:
                    raise APIError(500, f"multiple jobs found for id {job_id}", "MultipleJobsFound", "JobStore",
                                   "Use full job ID")
                job_id = found[0] if found else job_id
            if job_id not in self._jobs:
                raise job_not_found(job_id)
            return copy.deepcopy(self._jobs[job_id])

    def get_by_id_or_name(self, id_or_name: str, namespace: str) -> Obj:
        return self.by_name(id_or_name, namespace) or self.get(id_or_name)

    def in_progress(self) -> list[str]:
        with self._lock:
            return [k for k, j in self._jobs.items() if j["State"]["StateType"] not in TERMINAL_JOB_STATES]

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Writes made inside are read together, as upstream's one BoltDB transaction per plan: a reader never sees
        a job Failed before the history event saying why."""
        with self._lock:
            yield

    def update_job_state(self, job_id: str, new_state: str, message: str = "") -> bool:
        """UpdateJobState: False (nothing written) when the job is already terminal."""
        with self._lock:
            job = self._jobs[job_id]
            if job["State"]["StateType"] in TERMINAL_JOB_STATES:
                return False
            job["State"] = {"StateType": new_state, **({"Message": message} if message else {})}
            job["Revision"] += 1
            job["ModifyTime"] = now_ns()
            self._persist()
            return True

    # ---- history ----

    def add_history(self, job_id: str, events: list[Obj], execution_id: str = "") -> None:
        with self._lock:
            items = self._history[job_id]
            version = self._jobs[job_id]["Version"]
            for ev in events:
                item: Obj = {"SeqNum": len(items) + 1, "Type": "ExecutionLevel" if execution_id else "JobLevel",
                             "JobID": job_id, "JobVersion": version, "Event": ev, "Time": now_ns()}
                if execution_id:
                    item["ExecutionID"] = execution_id
                items.append(item)
            self._persist()

    def history(self, job_id: str) -> list[Obj]:
        with self._lock:
            return copy.deepcopy(self._history.get(job_id, []))

    # ---- executions ----

    def create_execution(self, execution: Obj, events: list[Obj]) -> None:
        with self._lock:
            self._executions[execution["JobID"]].append(copy.deepcopy(execution))
            self.add_history(execution["JobID"], events, execution["ID"])

    def executions(self, job_id: str) -> list[Obj]:
        """In creation order (GetExecutions' default order_by is the create time)."""
        with self._lock:
            return copy.deepcopy(self._executions.get(job_id, []))

    def execution(self, execution_id: str) -> Obj | None:
        with self._lock:
            for executions in self._executions.values():
                for execution in executions:
                    if execution["ID"] == execution_id:
                        return copy.deepcopy(execution)
        return None

    def update_execution(self, execution_id: str, new_values: Obj, events: list[Obj],
                         condition: Callable[[Obj], bool] = lambda _e: True) -> Obj:
        """UpdateExecution: condition, no update of a terminal compute state, Revision+1, mergo fill. Raises
        StoreConflict."""
        with self._lock:
            for executions in self._executions.values():
                for index, existing in enumerate(executions):
                    if existing["ID"] != execution_id:
                        continue
                    if not condition(existing):
                        raise StoreConflict(f"execution {execution_id}: condition not met")
                    if existing["ComputeState"]["StateType"] in TERMINAL_EXEC_STATES:
                        raise StoreConflict(f"execution {execution_id} is already terminal")
                    updated = merge_fill({**new_values, "Revision": existing["Revision"] + 1,
                                          "ModifyTime": now_ns()}, existing)
                    executions[index] = updated
                    self.add_history(existing["JobID"], events, execution_id)
                    return copy.deepcopy(updated)
        raise StoreConflict(f"execution not found: {execution_id}")

    def non_terminal_executions(self) -> list[Obj]:
        with self._lock:
            return [copy.deepcopy(e) for executions in self._executions.values() for e in executions
                    if not is_terminal_exec(e)]
