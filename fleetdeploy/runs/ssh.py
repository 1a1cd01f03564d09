"""The one place that builds an ssh command line for a fleet node (CLI `ssh`/`logs`, the local provider).

Host keys change with every replaced spot node or new container, so none is pinned.
"""

from __future__ import annotations

import shutil

from fleetdeploy.errors import InputError

# The login user on every node: SkyPilot's AWS images use it, and the local provider creates it to match.
NODE_USER = "ubuntu"


def ssh_argv(key_file: str, host: str, port: int, *command: str, user: str = NODE_USER,
             batch: bool = False) -> list[str]:
    """`ssh` to a node; `batch` for scripts (no prompts, short connect timeout, only the given key)."""
    if shutil.which("ssh") is None:
        raise InputError("'ssh' not found on PATH (apt-get install openssh-client)")
    options = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"]
    if batch:
        options += ["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=5"]
    return ["ssh", "-i", key_file, "-p", str(port), *options, f"{user}@{host}", *command]
