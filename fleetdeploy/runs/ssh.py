"""The one owner of SSH options to fleet nodes: `deploy.py ssh`/`logs`, the local provider's boot check, and (as
per-host inventory variables) every Ansible run, health.yml included, and the watcher's exchange (runs/exchange.py).

Host keys are trusted on first use and pinned per instance, not per address: cloud IPs are reused, and every
local node is 127.0.0.1. Each fleet has its own known_hosts file in its state dir, keyed by instance id
(HostKeyAlias), unhashed so that entries of instances that are gone can be pruned. A node whose key changed for
the same instance id is refused (only that node); `forget_command` is how a person accepts the new key.
SkyPilot's own provisioning SSH is SkyPilot's: it does not pin keys (StrictHostKeyChecking=no in its runner).
"""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Sequence
from pathlib import Path

from fleetdeploy.errors import InputError
from fleetdeploy.private_files import write_private

# The login user on every node: SkyPilot's AWS images use it, and the local provider creates it to match.
NODE_USER = "ubuntu"
KNOWN_HOSTS = "known_hosts"
# Where SSH masters of our own connections live: the directory Ansible's live in (ansible.cfg control_path_dir),
# short enough for a socket path wherever the state dir is.
CONTROL_DIR = Path("~/.ansible/cp").expanduser()
# What ssh says when a pinned key no longer matches (its banner, and the line that ends the attempt).
_CHANGED = ("REMOTE HOST IDENTIFICATION HAS CHANGED", "Host key verification failed")


def known_hosts_file(fleet_dir: Path) -> Path:
    return fleet_dir / KNOWN_HOSTS


def host_key_options(alias: str, known_hosts: Path) -> list[str]:
    """`-o` options pinning the node's host key under `alias` (its instance id) in the fleet's known_hosts."""
    return ["-o", f"HostKeyAlias={alias}", "-o", f"UserKnownHostsFile={known_hosts}",
            "-o", "StrictHostKeyChecking=accept-new", "-o", "HashKnownHosts=no", "-o", "GlobalKnownHostsFile=/dev/null"]


def ansible_ssh_args(alias: str, known_hosts: Path, more_identities: Sequence[str] = ()) -> str:
    """The same options as one string, for the inventory's `ansible_ssh_extra_args`, with the keys to offer after
    `ansible_ssh_private_key_file` (Ansible puts that one first)."""
    keys = [arg for key in more_identities for arg in ("-o", f"IdentityFile={shlex.quote(key)}")]
    return " ".join([*host_key_options(alias, known_hosts), *keys])


def ssh_argv(identities: Sequence[str], host: str, port: int, *command: str, alias: str, known_hosts: Path,
             user: str = NODE_USER, batch: bool = False) -> list[str]:
    """`ssh` to a node offering `identities` in order; `batch` for scripts (no prompts, short connect timeout, only
    the given keys)."""
    if shutil.which("ssh") is None:
        raise InputError("'ssh' not found on PATH (apt-get install openssh-client)")
    known_hosts.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    options = [*host_key_options(alias, known_hosts), "-o", "LogLevel=ERROR"]
    if batch:
        options += ["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=5"]
    keys = [arg for key in identities for arg in ("-i", key)]
    return ["ssh", *keys, "-p", str(port), *options, f"{user}@{host}", *command]


def forget_command(alias: str, known_hosts: Path) -> str:
    return f"ssh-keygen -R {alias} -f {known_hosts}"


def host_key_changed(message: str) -> bool:
    return any(marker in message for marker in _CHANGED)


def refused_message(node: str, alias: str, known_hosts: Path) -> str:
    """One line for a node whose host key changed: which node, where the old key is, how to accept the new one."""
    return (f"{node}: host key changed for instance {alias}, so the connection was refused (known hosts: "
            f"{known_hosts}); if the instance really was rebuilt, forget the old key: "
            f"{forget_command(alias, known_hosts)}")


def prune_known_hosts(known_hosts: Path, keep: set[str]) -> int:
    """Drop the entries of instances not in `keep` (gone ones); returns how many lines went."""
    try:
        lines = known_hosts.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return 0
    kept = [line for line in lines if line.strip() and set(line.split()[0].split(",")) & keep]
    if len(kept) != len([line for line in lines if line.strip()]):
        write_private(known_hosts, "".join(f"{line}\n" for line in kept))
    return len(lines) - len(kept)
