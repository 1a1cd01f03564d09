"""The double's execution messages between orchestrator and compute doubles (its own JSON over NATS).

The real v1.9.3 nodes exchange NCL envelopes (pkg/models/messages: AskForBidRequest, BidAcceptedRequest,
BidRejectedRequest, CancelExecutionRequest one way; BidResult, RunResult, ComputeError the other). The double
keeps those message kinds and their payload fields, not the wire format:

- `bacalhau.double.compute.<node>.execution` (orchestrator → one compute node): {"Type": "AskForBid",
  "Execution": {...}} | {"Type": "BidAccepted"|"BidRejected"|"Cancel", "ExecutionID", "Message"};
- `bacalhau.double.execution.result` (compute → orchestrator): {"Type": "BidResult"|"RunResult"|"ComputeError",
  "NodeID", "ExecutionID", "JobID", "JobType", "Events": [...], "Accepted" (BidResult), "RunCommandResult"
  (RunResult)}.

Both are NATS requests answered {"Received": true} at once; the sender retries a few times without an answer, a
stand-in for NCL's acknowledged, ordered delivery.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from bacalhau_double.nats import NatsConnection, NatsError

log = logging.getLogger("bacalhau")

RESULT_SUBJECT = "bacalhau.double.execution.result"
RECEIVED = json.dumps({"Received": True}).encode()
SEND_ATTEMPTS = 3
SEND_TIMEOUT_S = 5.0


def compute_subject(node_id: str) -> str:
    # NATS subject tokens cannot hold ".", "*", ">" or spaces; node names may (hostnames).
    return f"bacalhau.double.compute.{re.sub(r'[^A-Za-z0-9_-]', '_', node_id)}.execution"


def send(conn: NatsConnection, subject: str, message: dict[str, Any]) -> bool:
    """Publishes a request until it is acknowledged (False after SEND_ATTEMPTS unanswered tries)."""
    payload = json.dumps(message).encode()
    for _ in range(SEND_ATTEMPTS):
        try:
            if conn.request(subject, payload, SEND_TIMEOUT_S) is not None:
                return True
        except NatsError as exc:
            log.error("cannot send %s on %s: %s", message.get("Type"), subject, exc)
            return False
    log.error("no acknowledgement for %s on %s after %d attempts", message.get("Type"), subject, SEND_ATTEMPTS)
    return False


def decode(payload: bytes) -> dict[str, Any] | None:
    try:
        message = json.loads(payload)
    except ValueError:
        return None
    return message if isinstance(message, dict) and isinstance(message.get("Type"), str) else None
