"""The orchestrator's view of the fleet: Bacalhau's `GET /api/v1/orchestrator/nodes` (facts.md: Bacalhau API).

Only the orchestrator knows whether a compute node joined: the node itself exposes no connection state. A node
is *ready* when the orchestrator lists it as a Compute node that is CONNECTED and APPROVED. Reading the API never
raises anything but OrchestratorApiError, whose message is one line and never holds the API key.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from fleetdeploy.errors import InputError
from fleetdeploy.fleet.files import read_token
from fleetdeploy.jsondoc import JSONMapping, JSONObject, as_object

NODES_PATH = "/api/v1/orchestrator/nodes"
ALIVE_PATH = "/api/v1/agent/alive"  # open without credentials
CONNECTED = "CONNECTED"
APPROVED = "APPROVED"
NOT_LISTED = "not listed"
LOCAL_NOT_RUNNING = "the local orchestrator is not running (run deploy.py up)"
# Go's zero time: what Bacalhau writes for "never" (e.g. DisconnectedSince of a node that never dropped).
_ZERO_TIME = "0001-01-01T00:00:00Z"


class OrchestratorApiError(Exception):
    """The API could not be read; the message is one line naming the URL and the reason."""


@dataclass(frozen=True)
class OrchestratorView:
    """One node as the orchestrator's API lists it (Bacalhau's NodeState, reduced to what operators read)."""

    connection: str  # CONNECTED | DISCONNECTED (Bacalhau's spelling) | "not listed"
    approval: str | None  # APPROVED | PENDING | REJECTED; None when not listed
    last_heartbeat: str | None  # RFC3339 as Bacalhau writes it
    connected_since: str | None
    ready: bool  # Compute, CONNECTED and APPROVED
    reason: str  # why not ready ("" when ready)


@dataclass(frozen=True)
class OrchestratorNode:
    """One compute node as the orchestrator sees it."""

    node_id: str
    connection: str
    approval: str
    last_heartbeat: str | None = None
    connected_since: str | None = None
    last_error: str = ""

    @property
    def ready(self) -> bool:
        return self.connection == CONNECTED and self.approval == APPROVED

    @classmethod
    def from_node_state(cls, state: JSONMapping) -> OrchestratorNode:
        info = as_object(state.get("Info"))
        raw_conn = state.get("ConnectionState")
        # v1.5.2 has no ConnectionState: its deprecated `Connection` string is the status.
        status = raw_conn.get("Status") if isinstance(raw_conn, dict) else state.get("Connection")
        conn = as_object(raw_conn)
        return cls(
            node_id=str(info.get("NodeID", "")),
            connection=str(status or "UNKNOWN").upper(),
            approval=str(state.get("Membership") or "UNKNOWN").upper(),
            last_heartbeat=_time(conn.get("LastHeartbeat")),
            connected_since=_time(conn.get("ConnectedSince")),
            last_error=str(conn.get("LastError") or ""),
        )


def _time(value: object) -> str | None:
    return None if not value or value == _ZERO_TIME else str(value)


def readiness(node: OrchestratorNode | None) -> tuple[bool, str]:
    """(ready, why not) for one node; `why` is empty when ready. The single place this rule lives in Python."""
    if node is None:
        return False, "not listed by the orchestrator (never joined: check the token and the endpoint)"
    if node.connection != CONNECTED:
        why = f"{node.connection} per the orchestrator"
        if node.last_error:
            why += f" ({node.last_error})"
        if node.last_heartbeat:
            why += f", last heartbeat {short_time(node.last_heartbeat)}"
        return False, why
    if node.approval != APPROVED:
        return False, f"membership {node.approval} (approve it: bacalhau node approve {node.node_id})"
    return True, ""


def short_time(value: str) -> str:
    """`2026-12-03T13:14:29.123456789Z` -> `2026-12-03 13:14:29Z` (for tables)."""
    return value.replace("T", " ", 1).split(".", 1)[0].rstrip("Z") + "Z"


def compute_node_states(document: object) -> list[JSONObject]:
    """The Compute NodeStates of a list-nodes answer, as Bacalhau wrote them (the orchestrator lists itself too:
    skipped). ValueError when the document is not Bacalhau's node list."""
    nodes = document.get("Nodes") if isinstance(document, dict) else None
    if not isinstance(nodes, list):
        raise ValueError("the answer has no Nodes list")
    states = [state for state in nodes if isinstance(state, dict)]
    if len(states) != len(nodes):
        raise ValueError("a Nodes entry is not an object")
    return [state for state in states if as_object(state.get("Info")).get("NodeType", "Compute") == "Compute"]


def parse_nodes(document: object) -> dict[str, OrchestratorNode]:
    """The compute nodes of a list-nodes answer, by node ID."""
    return by_node_id(compute_node_states(document))


def by_node_id(states: list[JSONObject]) -> dict[str, OrchestratorNode]:
    nodes = (OrchestratorNode.from_node_state(state) for state in states)
    return {node.node_id: node for node in nodes}


@dataclass(frozen=True)
class OrchestratorAnswer:
    """One read of the orchestrator's node list: the compute nodes by ID, or the one line saying why there are none.

    An unreadable API is never a node's fault: `view` is then None for every node, and the node checks decide.
    """

    nodes: dict[str, OrchestratorNode]
    error: str = ""

    def view(self, name: str) -> OrchestratorView | None:
        return None if self.error else view_of(self.nodes.get(name))


@dataclass(frozen=True)
class OrchestratorApi:
    url: str
    token_file: Path | None = None
    timeout_s: float = 10.0
    unavailable: str = ""  # why there is no API to ask (e.g. the local orchestrator is not running)

    def _request(self, path: str, method: str = "GET", body: bytes | None = None) -> urllib.request.Request:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        if self.token_file is not None:
            try:
                key = read_token(self.token_file, "orchestrator API key")
            except InputError as exc:
                raise OrchestratorApiError(str(exc)) from None
            request.add_header("Authorization", f"Bearer {key}")
        return request

    def call(self, path: str, method: str = "GET", payload: JSONMapping | None = None,
             expected: str = "JSON") -> object:
        """One request to the API and its JSON answer. Bounded by timeout_s; errors are OrchestratorApiError,
        whose message names the URL and the reason (never the API key)."""
        if self.unavailable:
            raise OrchestratorApiError(f"orchestrator API: {self.unavailable}")
        where = f"orchestrator API {self.url}"
        body = None if payload is None else json.dumps(payload).encode()
        try:
            with _direct_opener().open(self._request(path, method, body), timeout=self.timeout_s) as response:
                raw = response.read(16 * 1024 * 1024)
        except urllib.error.HTTPError as exc:
            raise OrchestratorApiError(f"{where} answered {exc.code} {_api_message(exc)}") from None
        except urllib.error.URLError as exc:
            reason = exc.reason.strerror if isinstance(exc.reason, OSError) and exc.reason.strerror else exc.reason
            raise OrchestratorApiError(f"{where} unreachable: {reason}") from None
        except TimeoutError:
            raise OrchestratorApiError(f"{where} did not answer within {self.timeout_s:g} s") from None
        except OSError as exc:
            raise OrchestratorApiError(f"{where} unreachable: {exc.strerror or exc}") from None
        except http.client.HTTPException as exc:  # not HTTP at all (e.g. the NATS port), or cut short
            raise OrchestratorApiError(f"{where} did not answer in HTTP ({type(exc).__name__})") from None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise OrchestratorApiError(f"{where} answered something that is not {expected} ({exc})") from None

    def node_states(self) -> list[JSONObject]:
        """The compute nodes' NodeStates as Bacalhau wrote them. Bounded by timeout_s; errors are
        OrchestratorApiError."""
        document = self.call(NODES_PATH, expected="Bacalhau's node list")
        try:
            return compute_node_states(document)
        except ValueError as exc:
            raise OrchestratorApiError(f"orchestrator API {self.url} answered something that is not Bacalhau's "
                                       f"node list ({exc})") from None

    def nodes(self) -> dict[str, OrchestratorNode]:
        """The compute nodes the orchestrator lists, by node ID (errors are OrchestratorApiError)."""
        return by_node_id(self.node_states())

    def read(self) -> OrchestratorAnswer:
        """The compute nodes, or why they could not be read: never raises."""
        try:
            return OrchestratorAnswer(self.nodes())
        except OrchestratorApiError as exc:
            return OrchestratorAnswer({}, str(exc))

    def alive(self) -> bool:
        """Whether Bacalhau's liveness path answers 200 within timeout_s."""
        try:
            with _direct_opener().open(self.url + ALIVE_PATH, timeout=self.timeout_s) as response:
                return bool(response.status == 200)
        except (OSError, ValueError):
            return False


def _direct_opener() -> urllib.request.OpenerDirector:
    # No proxies: the API is reached directly (a proxy from the environment would see the bearer key).
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _api_message(exc: urllib.error.HTTPError) -> str:
    """Bacalhau's error body names the problem ({"Message": ...}); 401/403 get a hint about the API key."""
    try:
        message = str(json.loads(exc.read(64 * 1024)).get("Message", "")).strip()
    except (ValueError, AttributeError, OSError):
        message = ""
    text = message or exc.reason or "error"
    if exc.code in (401, 403):
        text += " (check orchestrator.api_token_file)"
    return " ".join(str(text).split())[:200]


def view_of(node: OrchestratorNode | None) -> OrchestratorView:
    """What the result tables and JSON show for one node."""
    ready, why = readiness(node)
    if node is None:
        return OrchestratorView(NOT_LISTED, None, None, None, ready=False, reason=why)
    return OrchestratorView(node.connection, node.approval, node.last_heartbeat, node.connected_since,
                            ready=ready, reason=why)
