"""GET /api/v1/orchestrator/nodes[/:id] (pkg/publicapi/endpoint/orchestrator/node.go of v1.9.3).

Kept: query binding by echo (limit is a uint32, reverse a Go bool, a bad value is a 400 quoting strconv's error;
names also match case-insensitively), upper-cased filters compared with the enum spellings (an unknown value just
matches nothing), the label selector, the sort keys (`status` sorts by *membership*, as upstream), a stable sort
(Go's insertion sort for the small lists a fleet has) whose ties keep the store order, `reverse` that flips only
the comparison (ties stay in store order), `limit` applied after sorting, and NextToken always "".
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import cmp_to_key
from typing import Any

from bacalhau_double.api import APIError, Request, Router, echo_error
from bacalhau_double.nodes import NodeManager
from bacalhau_double.selector import SelectorError, parse

NodeState = dict[str, Any]
_NODE_TYPE_ORDER = {"Requester": 1, "Compute": 2}  # models.NodeType is an int enum: Requester sorts first
_GO_BOOLS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
             "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}


def _cmp(a: Any, b: Any) -> int:
    return int((a > b) - (a < b))


def _capacity(field: str) -> Callable[[NodeState], float]:
    return lambda node: (node["Info"].get("ComputeNodeInfo") or {}).get("AvailableCapacity", {}).get(field, 0)


def sort_function(order_by: str) -> Callable[[NodeState, NodeState], int] | None:
    """getSortFunction; capacities sort descending (CmpRev); None for an unknown key."""
    if order_by in ("id", ""):
        return lambda a, b: _cmp(a["Info"]["NodeID"], b["Info"]["NodeID"])
    if order_by == "type":
        return lambda a, b: _cmp(_NODE_TYPE_ORDER.get(a["Info"]["NodeType"], 0),
                                 _NODE_TYPE_ORDER.get(b["Info"]["NodeType"], 0))
    if order_by in ("available_cpu", "available_memory", "available_disk", "available_gpu"):
        key = _capacity({"cpu": "CPU", "memory": "Memory", "disk": "Disk", "gpu": "GPU"}[order_by[10:]])
        return lambda a, b: _cmp(key(b), key(a))
    if order_by in ("approval", "status"):
        return lambda a, b: _cmp(a["Membership"], b["Membership"])
    return None


def _go_quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _bind_error(message: str) -> APIError:
    # echo's binder error (an HTTPError with the strconv error inside), wrapped again by the handler.
    inner = f"code=400, message={message}, internal={message}"
    return echo_error(400, inner)


def _bind_uint32(request: Request, name: str) -> int:
    raw = request.query_value(name)
    if raw is None or raw == "":
        return 0
    if not re.fullmatch(r"[0-9]+", raw):
        raise _bind_error(f"strconv.ParseUint: parsing {_go_quote(raw)}: invalid syntax")
    if int(raw) > 0xFFFFFFFF:
        raise _bind_error(f"strconv.ParseUint: parsing {_go_quote(raw)}: value out of range")
    return int(raw)


def _bind_bool(request: Request, name: str) -> bool:
    raw = request.query_value(name)
    if raw is None or raw == "":
        return False
    if raw not in _GO_BOOLS:
        raise _bind_error(f"strconv.ParseBool: parsing {_go_quote(raw)}: invalid syntax")
    return _GO_BOOLS[raw]


def list_nodes(manager: NodeManager, request: Request) -> dict[str, Any]:
    limit = _bind_uint32(request, "limit")
    order_by = request.query_value("order_by") or ""
    reverse = _bind_bool(request, "reverse")
    approval = (request.query_value("filter-approval") or "").upper()
    status = (request.query_value("filter-status") or "").upper()
    selector_text = ",".join(request.query.get("labels", []))
    try:
        selector = parse(selector_text) if "labels" in request.query else (lambda _labels: True)
    except SelectorError as exc:
        raise echo_error(400, str(exc)) from None
    compare = sort_function(order_by)
    if compare is None:
        raise echo_error(400, "invalid order_by")
    if reverse:
        base = compare
        compare = lambda a, b: -base(a, b)  # noqa: E731 - mirrors the handler's wrapper
    nodes = [node for node in manager.list()
             if (not approval or approval == node["Membership"])
             and (not status or status == node["ConnectionState"]["Status"])
             and selector(node["Info"].get("Labels") or {})]
    nodes.sort(key=cmp_to_key(compare))  # Python's sort is stable, like Go's for up to 12 nodes
    if limit and len(nodes) > limit:
        nodes = nodes[:limit]
    return {"NextToken": "", "Nodes": nodes}


def get_node(manager: NodeManager, request: Request) -> dict[str, Any]:
    node_id = request.params.get("id", "")
    if not node_id:
        raise echo_error(400, "missing node id")
    return {"Node": manager.get_by_prefix(node_id)}


def _membership_admin(_request: Request) -> Any:
    raise APIError(501, "the test double does not support node approve/reject/delete", "NotImplemented", "APIServer")


def node_routes(router: Router, manager: NodeManager) -> None:
    router.add("GET", "/api/v1/orchestrator/nodes", lambda request: list_nodes(manager, request))
    router.add("GET", "/api/v1/orchestrator/nodes/:id", lambda request: get_node(manager, request))
    # Registered upstream (approve/reject/delete). The double has no membership admin; a 501 says so plainly
    # instead of a misleading 405.
    router.add("PUT", "/api/v1/orchestrator/nodes/:id", _membership_admin)
