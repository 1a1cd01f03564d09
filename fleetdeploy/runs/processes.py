"""What every many-nodes-at-once runner here needs of the controller's processes: ending an SSH client with
whatever it started, and enough open files for one client per node."""

from __future__ import annotations

import os
import resource
import signal
import subprocess

# This process's three pipes to one ssh client (and a stderr file), with room: per node in flight.
FILES_PER_CLIENT = 8


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group a client was started in (start_new_session=True), unless it has ended."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # ended in between


def allow_open_files(clients: int) -> None:
    """Raise this process's soft limit on open files toward the hard limit for `clients` at once (the soft limit
    is 1024 by default: about 120 clients)."""
    wanted = clients * FILES_PER_CLIENT + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
