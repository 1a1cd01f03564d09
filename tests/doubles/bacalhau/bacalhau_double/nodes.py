"""The orchestrator's node manager (pkg/orchestrator/nodes/manager.go of v1.9.3), fed by real compute connections.

Same state machine as the real one: a handshake makes a node CONNECTED (new ConnectedSince); heartbeats move
LastHeartbeat; a check every DisconnectTimeout/3 (1 s..30 s) marks nodes whose last heartbeat is older than the
timeout DISCONNECTED with "heartbeat timeout"; a shutdown notice does it at once with "graceful shutdown"; a
heartbeat from a node that is not CONNECTED is refused with HandshakeRequired, so the node handshakes again. Nodes
are never forgotten. The store keeps the real key order (last write last, like the NATS KV bucket's key listing),
and is persisted in DataDir like the real one, so departed nodes survive an orchestrator restart.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import threading
from collections import OrderedDict
from typing import Any

from bacalhau_double.api import APIError
from bacalhau_double.wire import go_time, now_ns

log = logging.getLogger("bacalhau")

CONNECTED, DISCONNECTED = "CONNECTED", "DISCONNECTED"
HANDSHAKE_REQUIRED = "HandshakeRequired"
PERSIST_INTERVAL_S = 300.0  # defaultPersistInterval: live connection states reach the store every 5 minutes


def check_interval(disconnect_after_s: float) -> float:
    """heartbeatCheckFrequency: a third of the disconnect timeout, clamped to 1 s..30 s."""
    return min(max(disconnect_after_s / 3, 1.0), 30.0)


def _conn(status: str, now: int, connected_since: int) -> dict[str, Any]:
    """models.ConnectionState, times in ns since the epoch (0 = Go's zero time)."""
    return {"Status": status, "LastHeartbeat": now, "ConnectedSince": connected_since, "DisconnectedSince": 0,
            "LastError": ""}


def not_found(node_id: str) -> APIError:
    return APIError(404, f"node not found: {node_id}", "NotFound", "NodesManager")


class NodeManager:
    def __init__(self, self_info: dict[str, Any], disconnect_after_s: float, manual_approval: bool,
                 store_path: str | None) -> None:
        self._lock = threading.Lock()
        self._store: OrderedDict[str, dict[str, Any]] = OrderedDict()  # NodeID -> persisted NodeState
        self._live: dict[str, dict[str, Any]] = {}  # NodeID -> {"conn", "available", "queue"}
        self._disconnect_after_ns = int(disconnect_after_s * 1e9)
        self._approval = "PENDING" if manual_approval else "APPROVED"
        self._store_path = store_path
        self._stop = threading.Event()
        self._load()
        self._self_register(self_info)

    # ---- store ----

    def _load(self) -> None:
        if not self._store_path or not os.path.exists(self._store_path):
            return
        try:
            with open(self._store_path, encoding="utf-8") as handle:
                for state in json.load(handle):
                    self._store[state["Info"]["NodeID"]] = state
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable node store %s: %s", self._store_path, exc)

    def _put(self, state: dict[str, Any]) -> None:
        node_id = state["Info"]["NodeID"]
        self._store.pop(node_id, None)
        self._store[node_id] = copy.deepcopy(state)
        if self._store_path:
            tmp = self._store_path + ".tmp"
            try:
                with open(tmp, "w", encoding="utf-8") as handle:
                    json.dump(list(self._store.values()), handle)
                os.replace(tmp, self._store_path)
            except OSError as exc:  # keep serving from memory; the real node logs store failures too
                log.error("failed to persist node state to %s: %s", self._store_path, exc.strerror)

    def _self_register(self, info: dict[str, Any]) -> None:
        now = now_ns()
        with self._lock:
            state = self._store.get(info["NodeID"]) or {"Membership": "APPROVED", "ConnectionState": _conn(
                CONNECTED, now, now)}
            state["Info"] = info
            state["ConnectionState"].update(Status=CONNECTED, LastHeartbeat=now)
            state["ConnectionState"]["ConnectedSince"] = state["ConnectionState"]["ConnectedSince"] or now
            self._put(state)

    # ---- what compute nodes send ----

    def _is_stale(self, conn: dict[str, Any], now: int) -> bool:
        return bool(conn["Status"] == CONNECTED and now - conn["LastHeartbeat"] > self._disconnect_after_ns)

    def handshake(self, info: dict[str, Any]) -> tuple[bool, str]:
        node_id = str(info.get("NodeID", ""))
        with self._lock:
            existing = self._store.get(node_id)
            if existing is not None and existing["Membership"] == "REJECTED":
                return False, "node has been rejected"
            if info.get("NodeType") != "Compute":
                return False, "node is not a compute node"
            now = now_ns()
            state: dict[str, Any] = {"Info": info, "Membership": existing["Membership"] if existing else self._approval,
                                     "ConnectionState": _conn(CONNECTED, now, now)}
            self._put(state)
            compute = info.get("ComputeNodeInfo") or {}
            self._live[node_id] = {"conn": dict(state["ConnectionState"]),
                                   "available": compute.get("AvailableCapacity") or {},
                                   "queue": compute.get("QueueCapacity") or {}}
        log.info("handshake successful with node %s", node_id)
        return True, "node reconnected" if existing else "node registered"

    def heartbeat(self, node_id: str, available: dict[str, Any], queue: dict[str, Any]) -> str | None:
        with self._lock:
            live = self._live.get(node_id)
            if live is None or live["conn"]["Status"] != CONNECTED:
                return HANDSHAKE_REQUIRED
            live["conn"]["LastHeartbeat"] = now_ns()
            live["available"], live["queue"] = available or {}, queue or {}
        return None

    def shutdown_notice(self, node_id: str, reason: str) -> str | None:
        with self._lock:
            live = self._live.get(node_id)
            if live is None or live["conn"]["Status"] != CONNECTED:
                return HANDSHAKE_REQUIRED
            self._disconnect(live, "graceful shutdown")
        log.info("Node shutdown notice received: node %s (%s)", node_id, reason or "no reason")
        return None

    @staticmethod
    def _disconnect(live: dict[str, Any], error: str) -> None:
        live["conn"].update(Status=DISCONNECTED, DisconnectedSince=now_ns(), LastError=error)
        live["available"], live["queue"] = {}, {}  # a node that is gone offers nothing

    # ---- background work ----

    def check_health(self) -> None:
        now = now_ns()
        with self._lock:
            for node_id, live in self._live.items():
                if self._is_stale(live["conn"], now):
                    log.info("Marking node as disconnected: node %s, last heartbeat %s", node_id,
                             go_time(live["conn"]["LastHeartbeat"]))
                    self._disconnect(live, "heartbeat timeout")

    def persist_live(self) -> None:
        """persistLiveState: write live connection states whose status differs from the stored one."""
        with self._lock:
            for node_id, live in self._live.items():
                state = self._store.get(node_id)
                if state is None or state["ConnectionState"]["Status"] == live["conn"]["Status"]:
                    continue
                state = copy.deepcopy(state)
                state["ConnectionState"] = dict(live["conn"])
                self._put(state)

    def run(self) -> None:
        """The health-check and persistence loops; returns after stop(), persisting one last time."""
        interval = check_interval(self._disconnect_after_ns / 1e9)
        waited = 0.0
        while not self._stop.wait(interval):
            self.check_health()
            waited += interval
            if waited >= PERSIST_INTERVAL_S:
                waited = 0.0
                self.persist_live()
        self.persist_live()

    def stop(self) -> None:
        self._stop.set()

    # ---- what the API reads ----

    def _enriched(self, state: dict[str, Any]) -> dict[str, Any]:
        """enrichState, rendered as the JSON the API sends (models.NodeState field order)."""
        info = copy.deepcopy(state["Info"])
        conn = dict(state["ConnectionState"])
        compute = info.setdefault("ComputeNodeInfo", {})
        live = self._live.get(info["NodeID"])
        if live is not None:
            conn = dict(live["conn"])
            compute["AvailableCapacity"], compute["QueueCapacity"] = copy.deepcopy(live["available"]), copy.deepcopy(
                live["queue"])
        elif info.get("NodeType") == "Compute":
            conn["Status"] = DISCONNECTED  # known from the store only: not connected since this start
            compute["AvailableCapacity"], compute["QueueCapacity"] = {}, {}
        rendered = {"Status": conn["Status"], "LastHeartbeat": go_time(conn["LastHeartbeat"]),
                    "ConnectedSince": go_time(conn["ConnectedSince"]),
                    "DisconnectedSince": go_time(conn["DisconnectedSince"])}
        if conn.get("LastError"):
            rendered["LastError"] = conn["LastError"]
        return {"Info": info, "Membership": state["Membership"], "Connection": conn["Status"],
                "ConnectionState": rendered}

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self._enriched(state) for state in self._store.values()]

    def get_by_prefix(self, prefix: str) -> dict[str, Any]:
        """Plain prefix match over all IDs (the KV store has no exact-match shortcut: "n1" is ambiguous with "n10")."""
        with self._lock:
            matches = [node_id for node_id in self._store if node_id.startswith(prefix)]
            if len(matches) == 1:
                return self._enriched(self._store[matches[0]])
        if not matches:
            raise not_found(prefix)
        shown = matches[:3] + ["..."] if len(matches) > 3 else matches
        raise APIError(409, f"multiple nodes found for prefix: {prefix}, matching IDs: [{' '.join(shown)}]",
                       "MultipleNodesFound", "NodesManager", "Use a more specific node ID prefix")
