"""`up` waits until the orchestrator lists the nodes it configured as ready (CONNECTED and APPROVED).

Bounded by a deadline, with a live row per node. An API that cannot be read is not a node failure (the node
checks still decide): after a few failed reads the wait ends with a one-line note instead of hanging.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from fleetdeploy.orchestrator.api import (
    OrchestratorApi,
    OrchestratorApiError,
    OrchestratorView,
    view_of,
)
from fleetdeploy.output.progress import ProgressBoard

POLL_INTERVAL_S = 2.0
# Consecutive unreadable answers after which the wait stops asking (the API is down or misnamed, not slow).
MAX_API_FAILURES = 4


@dataclass(frozen=True)
class NodeJoin:
    node: str
    orchestrator: OrchestratorView | None  # None: the API never answered for it


@dataclass
class JoinResult:
    """`up`'s wait for the orchestrator to list the configured nodes as ready."""

    seconds: float
    nodes: list[NodeJoin]
    note: str = ""  # timeout, or why the API could not be read
    api_unreadable: bool = False  # then nothing is charged to the nodes (health's rule)

    @property
    def ok(self) -> bool:
        return self.api_unreadable or all(n.orchestrator is not None and n.orchestrator.ready for n in self.nodes)



def wait_for_join(api: OrchestratorApi, names: list[str], timeout_s: float, board: ProgressBoard,
                  sleep: Callable[[float], None] = time.sleep) -> JoinResult:
    started = time.monotonic()
    deadline = started + timeout_s
    seen: dict[str, OrchestratorView | None] = dict.fromkeys(names)
    failures, note = 0, ""
    while True:
        try:
            listed = api.nodes()
        except OrchestratorApiError as exc:
            failures, note = failures + 1, str(exc)
            for name in names:
                board.update(name, "running", f"asking the orchestrator: {exc}")
        else:
            failures, note = 0, ""
            for name in names:
                view = seen[name] = view_of(listed.get(name))
                board.update(name, "done" if view.ready else "running",
                             "CONNECTED, APPROVED" if view.ready else view.reason)
        done = not note and all(v is not None and v.ready for v in seen.values())
        if done or failures >= MAX_API_FAILURES or time.monotonic() >= deadline:
            break
        sleep(min(POLL_INTERVAL_S, max(0.0, deadline - time.monotonic())))
    if not note and not done:
        note = f"not every node joined within {timeout_s:g} s"
    elif failures:
        note += "; could not confirm that the nodes joined (node checks are unaffected)"
    nodes = [NodeJoin(name, seen[name]) for name in names]
    return JoinResult(seconds=round(time.monotonic() - started, 1), nodes=nodes, note=note,
                      api_unreadable=failures > 0)
