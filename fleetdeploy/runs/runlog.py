"""Per-fleet logs of Ansible runs: the full output of each run (no_log respected), the last RUNS_KEPT of them.

A failed task shows one line in the summary; the log keeps everything else, so nothing is lost after the run.
Files are 0600 under the fleet's state directory (they name hosts and paths, never secret values).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fleetdeploy.paths import state_dir

RUNS_KEPT = 20
_UNSAFE = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class RunLog:
    path: Path

    @classmethod
    @contextmanager
    def open(cls, fleet: str, title: str, kind: str = "runs") -> Iterator[RunLog]:
        """A new, empty 0600 log for one run; older logs of the same kind beyond RUNS_KEPT are removed."""
        directory = state_dir() / fleet / kind
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        slug = _UNSAFE.sub("-", title.lower()).strip("-")[:40] or "run"
        path = directory / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{slug}.log"
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        for old in sorted(directory.glob("*.log"))[:-RUNS_KEPT]:
            old.unlink(missing_ok=True)
        yield cls(path)
