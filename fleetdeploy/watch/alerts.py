"""Alerts to people: a JSON POST to `watch.webhook_url` (with a Slack-compatible `text`) for each transition.

Sent from one background thread through a bounded queue, each POST bounded by the timeout: a failing or hanging
webhook never stops or delays the loop (a full queue drops the oldest alert, and says so in the event log). The
URL may itself be a secret (Slack's are): it is never logged, and failures name only the kind of error.
"""

from __future__ import annotations

import json
import queue
import threading
import urllib.error
import urllib.request
from collections.abc import Callable

from fleetdeploy.watch.events import iso
from fleetdeploy.watch.model import Alert

QUEUE_SIZE = 100


def payload(fleet: str, alert: Alert, at: float) -> bytes:
    document = {"text": f"[fleet {fleet}] {alert.kind}: {alert.text}", "fleet": fleet, "kind": str(alert.kind),
                "subject": alert.subject, "at": iso(at)}
    return json.dumps(document).encode()


class WebhookSender:
    def __init__(self, url: str, timeout_s: float, report: Callable[[str], None]) -> None:
        self._url = url
        self._timeout = timeout_s
        self._report = report  # one line about a failed delivery (never the URL)
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=QUEUE_SIZE)
        self._thread = threading.Thread(target=self._run, name="webhook", daemon=True)
        self._thread.start()

    def send(self, body: bytes) -> None:
        while True:
            try:
                self._queue.put_nowait(body)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self._report("webhook: queue full, the oldest alert was dropped")
                except queue.Empty:
                    pass

    def _run(self) -> None:
        while (body := self._queue.get()) is not None:
            request = urllib.request.Request(self._url, data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310 - http(s) only
                    response.read(1024)
            except urllib.error.HTTPError as exc:
                self._report(f"webhook answered {exc.code}: an alert was not delivered")
            except (OSError, ValueError) as exc:
                reason = getattr(exc, "reason", None) or type(exc).__name__
                self._report(f"webhook unreachable ({reason}): an alert was not delivered")

    def close(self, wait_s: float) -> None:
        """Deliver what is queued, waiting at most `wait_s` (a hanging webhook is left behind)."""
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            return
        self._thread.join(wait_s)
