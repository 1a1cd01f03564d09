"""Node selection for a job (pkg/orchestrator/selection of v1.9.3: NodeSelector + the ranker chain).

Candidates are compute nodes that are APPROVED and CONNECTED. The chain runs in the real order — engines,
publishers, storages, labels, max usage, previous executions, random — adding ranks; a rank below zero makes a
node unsuitable for good, and the reason of the *last* ranker that rejected it is kept. Left out: the
over-subscription ranker (a double node has no queue), the min-version ranker (every double is v1.9.3) and the
available-capacity ranker (it only orders suitable nodes; a random 0..4 stands in, as upstream adds one too).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from bacalhau_double.constraints import labels_rank
from bacalhau_double.jobmodel import DISCARDED_EXEC_STATES, EXEC_ASK_FOR_BID_REJECTED, short_uuid
from bacalhau_double.jobspec import cpu_value
from bacalhau_double.nodeinfo import parse_bytes
from bacalhau_double.wire import go_sprint_float, humanize_bytes

Obj = dict[str, Any]
PREFERRED, POSSIBLE, UNSUITABLE = 10, 0, -1


@dataclass
class NodeRank:
    node_id: str
    rank: int = POSSIBLE
    reason: str = ""
    retryable: bool = False

    @property
    def suitable(self) -> bool:
        return self.rank >= 0


def _feature(required: list[str], provided: list[str] | None) -> tuple[int, str]:
    provided = provided or []
    for key in required:
        if not any(p.lower() == key.lower() for p in provided):
            return UNSUITABLE, f"does not support {key}, only {', '.join(provided)}"
    return PREFERRED, "provides all the specified required types"


def job_resources(task: Obj) -> dict[str, float]:
    res = task.get("Resources") or {}
    return {"CPU": cpu_value(res["CPU"]) or 0.0 if res.get("CPU") else 0.0,
            "Memory": parse_bytes(res["Memory"]) if res.get("Memory") else 0,
            "Disk": parse_bytes(res["Disk"]) if res.get("Disk") else 0,
            "GPU": int(res["GPU"]) if res.get("GPU") else 0}


def _max_usage(task: Obj, maximum: Obj) -> tuple[int, str]:
    wanted = job_resources(task)
    if not any(wanted.values()):
        return POSSIBLE, "max job resource requirements not set or unknown"
    if all(wanted[k] <= (maximum.get(k) or 0) for k in wanted):
        return PREFERRED, "job requires less resources than are available"
    def show(key: str, amount: float) -> str:
        # fmt.Sprint for CPU and GPUs, humanize.Bytes for memory and disk.
        return humanize_bytes(int(amount)) if key in ("Memory", "Disk") else go_sprint_float(amount) if key == "CPU" \
            else str(int(amount))

    reasons = []
    for key, label in (("CPU", "CPU"), ("Memory", "memory"), ("Disk", "disk"), ("GPU", "GPUs")):
        have = maximum.get(key) or 0
        if wanted[key] > have:
            reasons.append(f"more {label} ({show(key, wanted[key])}) than the maximum available ({show(key, have)})")
    return UNSUITABLE, "job requires " + " and ".join(reasons)


def _previous(node_id: str, executions: list[Obj]) -> tuple[int, str]:
    mine = [e for e in executions if e["NodeID"] == node_id]
    if not mine:
        return 3 * PREFERRED, "job not executed yet"
    if len(mine) > 1:
        return UNSUITABLE, "job already executed on this node more than once"
    state = mine[0]["ComputeState"]["StateType"]
    if state not in DISCARDED_EXEC_STATES or state == EXEC_ASK_FOR_BID_REJECTED:
        return UNSUITABLE, "job rejected"
    return POSSIBLE, "job already executed on this node"


def rank_nodes(job: Obj, nodes: list[Obj], executions: list[Obj]) -> tuple[list[NodeRank], list[NodeRank]]:
    """(matching, rejected): matching sorted by rank, best first. nodes are the node manager's NodeStates."""
    task = job["Tasks"][0]
    storages = list(dict.fromkeys(s["Source"]["Type"] for s in task.get("InputSources") or []))
    ranked = []
    for node in nodes:
        info = node["Info"]
        if (info.get("NodeType") != "Compute" or node["Membership"] != "APPROVED"
                or node["ConnectionState"]["Status"] != "CONNECTED"):
            continue
        compute = info.get("ComputeNodeInfo") or {}
        result = NodeRank(info["NodeID"])
        publisher = task["Publisher"]["Type"]
        chain = [(_feature([task["Engine"]["Type"]], compute.get("ExecutionEngines")), False),
                 (_feature([publisher] if publisher else [], compute.get("Publishers")), False),
                 (_feature(storages, compute.get("StorageSources")), False),
                 (labels_rank(job["Constraints"], info.get("Labels") or {}), False),
                 (_max_usage(task, compute.get("MaxJobRequirements") or {}), True),
                 (_previous(info["NodeID"], executions), False),
                 ((random.randrange(5), ""), False)]  # noqa: S311 - tie-breaking, not security
        for (rank, reason), retryable in chain:
            if rank < 0:
                result.rank, result.reason, result.retryable = UNSUITABLE, reason, retryable
            elif result.suitable:
                result.rank += rank
        ranked.append(result)
    matching = sorted((r for r in ranked if r.suitable), key=lambda r: -r.rank)
    return matching, [r for r in ranked if not r.suitable]


def not_enough_nodes(requested: int, ranks: list[NodeRank]) -> tuple[str, dict[str, str]]:
    """ErrNotEnoughNodes: its message and the details EventFromError records. Reason groups keep the order in
    which they first appear (Go iterates a map there, in random order)."""
    suitable = sum(1 for r in ranks if r.suitable)
    message = f"not enough nodes to run job. requested: {requested}, available: {len(ranks)}, suitable: {suitable}."
    groups: dict[str, list[NodeRank]] = {}
    for r in ranks:
        groups.setdefault(r.reason, []).append(r)
    for reason, members in groups.items():
        who = f"{len(members)} of {len(ranks)} nodes" if len(members) > 1 else f"Node {short_uuid(members[0].node_id)}"
        message += f"\n• {who}: {reason}"
    details = {"NodesAvailable": str(len(ranks)), "NodesRequested": str(requested), "NodesSuitable": str(suitable)}
    if any(not r.suitable and r.retryable for r in ranks):
        details["Retryable"] = "true"
    return message, details
