"""The fleet lock: `watch`, `up`, `configure` and `down` of one fleet never act on it at the same time.

One lock file per fleet in its state dir, held with flock(2): the kernel drops it when the holder exits, so a
killed process never leaves a stale lock behind. The holder writes who it is into the file so a waiting command
can say who holds it. The lock is per controller (per state dir): two machines sharing a remote SkyPilot API
server each have their own.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from fleetdeploy.errors import InputError

POLL_S = 0.2


@dataclass(frozen=True)
class Holder:
    pid: int
    purpose: str

    def describe(self) -> str:
        return f"{self.purpose} (pid {self.pid})"


def _read_holder(path: Path) -> Holder | None:
    try:
        pid, _, purpose = path.read_text(encoding="utf-8").strip().partition(" ")
        return Holder(int(pid), purpose or "unknown")
    except (OSError, ValueError):
        return None


class LockBusy(InputError):
    """Someone else holds the lock (exit 2: nothing was changed)."""

    def __init__(self, message: str, holder: Holder | None) -> None:
        super().__init__(message)
        self.holder = holder


@contextmanager
def held(path: Path, purpose: str, wait_s: float = 0.0, what: str = "fleet",
         waiting: Callable[[Holder | None], None] | None = None,
         sleep: Callable[[float], None] = time.sleep) -> Iterator[None]:
    """Hold the lock at `path` for the block; wait up to `wait_s` for it, then raise LockBusy naming the holder.

    `waiting` is told once, when the lock is found busy, so a command can say what it waits for.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait_s
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _read_holder(path)
                if time.monotonic() >= deadline:
                    who = holder.describe() if holder else "another process"
                    waited = f" after waiting {wait_s:g} s" if wait_s > 0 else ""
                    raise LockBusy(f"{what} is busy{waited}: {who} holds its lock ({path})", holder) from None
                if waiting is not None and not told:
                    waiting(holder)
                    told = True
                sleep(POLL_S)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {purpose}\n".encode(), 0)
        try:
            yield
        finally:
            with suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def fleet_lock_path(state: Path, fleet: str) -> Path:
    return state / fleet / "fleet.lock"


def watcher_lock_path(state: Path, fleet: str) -> Path:
    return state / fleet / "watch.lock"
