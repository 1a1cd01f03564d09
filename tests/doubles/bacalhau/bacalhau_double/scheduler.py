"""Scheduling of batch jobs with Count 1 (pkg/orchestrator of v1.9.3: BatchServiceJobScheduler, the plan's
StateUpdater, the NCL dispatcher's transitions and MessageHandler), on one worker thread.

An evaluation — after a submission, after every message from a compute node, and when a node that holds a live
execution stops being CONNECTED — replays the real scheduler's decisions for partition 0:
- live executions on nodes that are not CONNECTED fail ("Execution stop requested because node has disappeared");
- an AskForBidAccepted execution is approved (BidAccepted / desired Running, both with message "Running"), and
  the job turns Running;
- a completed execution completes the job; with no live or completed execution a new one is created on the best
  ranked node (ranking.py) — retries are unlimited, as with the real FixedStrategy, so the previous-executions
  ranker is what ends them: a second failure on the only node gives "job already executed on this node more than
  once";
- no suitable node: with QueueTimeout 0 (the default; the double refuses others) the job fails at once with
  ErrNotEnoughNodes' message, and its live executions are cancelled.
Compute results update executions as MessageHandler does (message of the first event, desired Stopped with
"execution completed" / "execution failed" / "bid rejected"). History events follow the plan's order: job-level
events before execution-level ones.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from bacalhau_double import jobmodel as m
from bacalhau_double.jobstore import JobStore, StoreConflict
from bacalhau_double.nodes import NodeManager
from bacalhau_double.ranking import not_enough_nodes, rank_nodes
from bacalhau_double.wire import now_ns

log = logging.getLogger("bacalhau")
Obj = dict[str, Any]
Dispatch = Callable[[str, Obj], bool]
SWEEP_INTERVAL_S = 2.0


class Scheduler:
    def __init__(self, store: JobStore, manager: NodeManager, dispatch: Dispatch) -> None:
        self.store, self.manager, self.dispatch = store, manager, dispatch
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._stop = threading.Event()

    # ---- inputs ----

    def submitted(self, job_id: str) -> None:
        self.store.add_history(job_id, [m.event(m.TOPIC_SUBMISSION, "Job submitted")])
        self._queue.put(("eval", job_id))

    def on_result(self, message: Obj) -> None:
        self._queue.put(("result", message))

    def stop(self) -> None:
        self._stop.set()
        self._queue.put(("stop", None))

    def run(self) -> None:
        """The worker: in-progress jobs are evaluated once at start (in-flight executions died with the compute
        doubles' NATS connections), then evaluations, compute results and the lost-node sweep."""
        for job_id in self.store.in_progress():
            self._queue.put(("eval", job_id))
        while not self._stop.is_set():
            try:
                kind, item = self._queue.get(timeout=SWEEP_INTERVAL_S)
            except queue.Empty:
                self._sweep()
                continue
            try:
                if kind == "eval":
                    self._evaluate(item)
                elif kind == "result":
                    self._handle_result(item)
            except Exception:  # noqa: BLE001 - one bad job must not stop scheduling for the others
                log.exception("scheduler failed on %s %s", kind, item if kind == "eval" else item.get("ExecutionID"))

    def _sweep(self) -> None:
        connected = self._connected()
        for job_id in {e["JobID"] for e in self.store.non_terminal_executions() if e["NodeID"] not in connected}:
            self._evaluate(job_id)

    def _connected(self) -> set[str]:
        return {n["Info"]["NodeID"] for n in self.manager.list() if n["ConnectionState"]["Status"] == "CONNECTED"}

    # ---- compute results (MessageHandler) ----

    def _handle_result(self, message: Obj) -> None:
        events = [ev for ev in message.get("Events") or [] if isinstance(ev, dict)]
        first = events[0]["Message"] if events else ""
        kind, execution_id = message["Type"], message["ExecutionID"]
        if kind == "BidResult":
            values: Obj = {"ComputeState": m.state(m.EXEC_ASK_FOR_BID_ACCEPTED, first)}
            if not message.get("Accepted"):
                values = {"ComputeState": m.state(m.EXEC_ASK_FOR_BID_REJECTED, first),
                          "DesiredState": m.state(m.DESIRED_STOPPED, "bid rejected")}
            condition = lambda e: e["DesiredState"]["StateType"] in (m.DESIRED_PENDING, m.DESIRED_RUNNING)  # noqa: E731
        elif kind == "RunResult":
            values = {"PublishedResult": {"Type": ""}, "RunOutput": message.get("RunCommandResult") or
                      m.empty_run_output(), "ComputeState": m.state(m.EXEC_COMPLETED),
                      "DesiredState": m.state(m.DESIRED_STOPPED, "execution completed")}
            condition = lambda e: e["DesiredState"]["StateType"] == m.DESIRED_RUNNING  # noqa: E731
        elif kind == "ComputeError":
            values = {"ComputeState": m.state(m.EXEC_FAILED, first),
                      "DesiredState": m.state(m.DESIRED_STOPPED, "execution failed")}
            condition = lambda e: e["ComputeState"]["StateType"] not in (m.EXEC_COMPLETED, m.EXEC_CANCELLED)  # noqa: E731
        else:
            log.error("unknown message type %s from node %s", kind, message.get("NodeID"))
            return
        try:
            updated = self.store.update_execution(execution_id, values, events, condition)
        except StoreConflict as exc:
            log.error("Error handling message %s: %s", kind, exc)
            return
        self._evaluate(updated["JobID"])

    # ---- evaluation (BatchServiceJobScheduler.Process) ----

    def _evaluate(self, job_id: str) -> None:
        job = self.store.get(job_id)
        executions = self.store.executions(job_id)
        updates: list[tuple[Obj, int, int, Obj]] = []  # (execution, desired, compute, event)
        job_events: list[Obj] = []
        live = [e for e in executions if not m.is_terminal_exec(e)]
        if job["State"]["StateType"] in m.TERMINAL_JOB_STATES:
            updates += [(e, m.DESIRED_STOPPED, m.EXEC_CANCELLED, m.event(
                m.TOPIC_SCHEDULING, "Execution stop requested because job has been stopped")) for e in live]
            self._apply(job, updates, None, None, "", job_events)
            return
        nodes = self.manager.list()
        connected = {n["Info"]["NodeID"] for n in nodes if n["ConnectionState"]["Status"] == "CONNECTED"}
        lost = [e for e in live if e["NodeID"] not in connected]
        live = [e for e in live if e["NodeID"] in connected]
        updates += [(e, m.DESIRED_STOPPED, m.EXEC_FAILED, m.event(m.TOPIC_SCHEDULING, m.EXEC_NODE_GONE_MESSAGE))
                    for e in lost]
        completed = [e for e in executions if e["ComputeState"]["StateType"] == m.EXEC_COMPLETED]
        updates += self._approvals(live, completed)

        new_execution: Obj | None = None
        failure: tuple[str, Obj] | None = None
        if not live and not completed:
            matching, rejected = rank_nodes(job, nodes, executions)
            if matching:
                new_execution = m.new_execution(job, matching[0].node_id, m.new_evaluation_id(), now_ns())
            else:
                message, details = not_enough_nodes(1, matching + rejected)
                failure = (message, m.error_event(m.TOPIC_SCHEDULING, message, details))

        new_state, message = None, ""
        if failure is not None:
            new_state, message = m.FAILED, failure[0]
            job_events.append(failure[1])
            updates = [u for u in updates if u[1] == m.DESIRED_STOPPED]  # MarkJobFailed drops the approvals
            stopping = {u[0]["ID"] for u in updates}
            updates += [(e, m.DESIRED_STOPPED, m.EXEC_CANCELLED, m.event(m.TOPIC_SCHEDULING,
                                                                         m.EXEC_STOPPED_BY_JOB_FAILURE))
                        for e in live if e["ID"] not in stopping]
        elif completed:
            new_state = m.COMPLETED
            job_events.append(_state_event(m.COMPLETED))
            new_execution = None
        elif job["State"]["StateType"] in (m.PENDING, m.QUEUED) and any(u[1] == m.DESIRED_RUNNING for u in updates):
            new_state = m.RUNNING
            job_events.append(_state_event(m.RUNNING))
        self._apply(job, updates, new_execution, new_state, message, job_events)

    @staticmethod
    def _approvals(live: list[Obj], completed: list[Obj]) -> list[tuple[Obj, int, int, Obj]]:
        """getApprovalStatuses for the one partition: approve the oldest bid, reject or cancel the rest."""
        reject = m.event(m.TOPIC_SCHEDULING, m.EXEC_NODE_REJECTED)
        cancel = m.event(m.TOPIC_SCHEDULING, m.EXEC_OVERSUBSCRIBED)
        out: list[tuple[Obj, int, int, Obj]] = []
        running = [e for e in live if e["DesiredState"]["StateType"] == m.DESIRED_RUNNING]
        keep = None if completed else (running[0] if running else next(
            (e for e in live if e["ComputeState"]["StateType"] == m.EXEC_ASK_FOR_BID_ACCEPTED), None))
        for execution in live:
            if execution is keep:
                if not running:
                    out.append((execution, m.DESIRED_RUNNING, m.EXEC_BID_ACCEPTED,
                                m.event(m.TOPIC_EXECUTION, m.EXEC_RUNNING_MESSAGE)))
            elif execution["ComputeState"]["StateType"] == m.EXEC_ASK_FOR_BID_ACCEPTED:
                out.append((execution, m.DESIRED_STOPPED, m.EXEC_BID_REJECTED, reject))
            elif completed or running:
                out.append((execution, m.DESIRED_STOPPED, m.EXEC_CANCELLED, cancel))
        return out

    # ---- the plan (StateUpdater, then the NCL dispatcher) ----

    def _apply(self, job: Obj, updates: list[tuple[Obj, int, int, Obj]], new_execution: Obj | None,
               new_state: str | None, message: str, job_events: list[Obj]) -> None:
        execution_events: dict[str, list[Obj]] = {}
        if new_execution is not None:
            self.store.create_execution(new_execution, [])
            execution_events[new_execution["ID"]] = [m.event(
                m.TOPIC_SCHEDULING, f"Requested execution on {m.short_uuid(new_execution['NodeID'])}",
                {"NodeID": new_execution["NodeID"]})]
        transitions = []
        for execution, desired, compute, ev in updates:
            values = {"DesiredState": m.state(desired, ev["Message"], ev.get("Details")),
                      "ComputeState": m.state(compute, ev["Message"], ev.get("Details"))}
            try:
                updated = self.store.update_execution(execution["ID"], values, [], _same_revision(execution))
            except StoreConflict as exc:
                log.warning("plan for job %s is stale: %s", job["ID"], exc)
                continue
            execution_events.setdefault(execution["ID"], []).append(ev)
            transitions.append((execution, updated))
        with self.store.transaction():
            if new_state is not None:
                self.store.update_job_state(job["ID"], new_state, message)
            if job_events:
                self.store.add_history(job["ID"], job_events)
            for execution_id, events in execution_events.items():
                self.store.add_history(job["ID"], events, execution_id)
        if new_execution is not None:
            self._send(new_execution, {"Type": "AskForBid", "Execution": new_execution})
        for before, after in transitions:
            self._dispatch_transition(before, after)

    def _dispatch_transition(self, before: Obj, after: Obj) -> None:
        was, now = before["DesiredState"]["StateType"], after["DesiredState"]["StateType"]
        compute = after["ComputeState"]
        note = {"ExecutionID": after["ID"], "Message": compute.get("Message", "")}
        if was == m.DESIRED_PENDING and now == m.DESIRED_RUNNING:
            self._send(after, {"Type": "BidAccepted", **note})
        elif was == m.DESIRED_PENDING and now == m.DESIRED_STOPPED and before["ComputeState"]["StateType"] in (
                m.EXEC_NEW, m.EXEC_ASK_FOR_BID, m.EXEC_ASK_FOR_BID_ACCEPTED):
            self._send(after, {"Type": "BidRejected", **note})
        elif was != m.DESIRED_STOPPED and now == m.DESIRED_STOPPED and \
                before["ComputeState"]["StateType"] not in m.TERMINAL_EXEC_STATES:
            self._send(after, {"Type": "Cancel", **note})

    def _send(self, execution: Obj, message: Obj) -> None:
        if message["Type"] != "AskForBid" and execution["NodeID"] not in self._connected():
            return  # a departed compute double has exited: waiting out its acknowledgement would stall scheduling
        if self.dispatch(execution["NodeID"], message) or message["Type"] != "AskForBid":
            return
        # The real NCL outbox would keep retrying; an undeliverable request fails the execution loudly instead.
        self.on_result({"Type": "ComputeError", "ExecutionID": execution["ID"], "Events": [m.error_event(
            m.TOPIC_SCHEDULING, f"the test double could not deliver the execution to node {execution['NodeID']}")]})


def _same_revision(execution: Obj) -> Callable[[Obj], bool]:
    """The plan's update condition: nobody changed the execution since the scheduler read it."""
    revision = execution["Revision"]
    return lambda current: bool(current["Revision"] == revision)


def _state_event(new_state: str) -> Obj:
    """JobStateUpdateEvent: topic "State Update", message = the state name, Details NewState."""
    return m.event(m.TOPIC_STATE_UPDATE, new_state, {"NewState": new_state})
