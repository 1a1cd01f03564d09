"""The watcher's history: an append-only JSON-lines log in the fleet's state dir (0600), rotated by size.

One line per event: {"at": ISO-8601 UTC, "kind": ..., "subject": ..., "text": ...} plus optional fields.
`deploy.py events [--since ...]` prints it; nothing in it is secret (alerts never carry one).
"""

from __future__ import annotations

import datetime
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fleetdeploy.jsondoc import JSON

MAX_BYTES = 1 << 20  # rotate at 1 MiB
KEPT = 3  # events.jsonl.1 .. .3


def iso(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Event:
    at: str
    kind: str
    subject: str
    text: str

    def to_json(self) -> dict[str, str]:
        return {"at": self.at, "kind": self.kind, "subject": self.subject, "text": self.text}


class EventLog:
    """Thread-safe: the webhook sender reports its failures here too."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def append(self, at: float, kind: str, subject: str, text: str, **extra: JSON) -> None:
        line = json.dumps({"at": iso(at), "kind": kind, "subject": subject, "text": text, **extra},
                          sort_keys=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._rotate(len(line))
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as handle:
                handle.write(line)

    def _rotate(self, adding: int) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size + adding <= MAX_BYTES:
            return
        for number in range(KEPT - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{number}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{number + 1}"))
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))

    def read(self, since: datetime.datetime | None = None) -> Iterator[Event]:
        """Every event (oldest first, rotated files included), from `since` on when given."""
        files = [self.path.with_name(f"{self.path.name}.{n}") for n in range(KEPT, 0, -1)] + [self.path]
        for path in files:
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except FileNotFoundError:
                continue
            for line in lines:
                try:
                    data = json.loads(line)
                    event = Event(str(data["at"]), str(data["kind"]), str(data["subject"]), str(data["text"]))
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut by a crash is skipped, never fatal
                if since is None or _parse(event.at) >= since:
                    yield event


def _parse(value: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
