"""The digest that says "this node was configured by these roles from these inputs" (site.yml's stamp).

site.yml's last task writes `fleet_config_digest` to the node, with the state of everything the roles manage
(playbooks/library/fleet_convergence.py). `up` and `configure` skip a node whose stamp holds this digest and whose
managed files, packages, services and containers are as recorded: healing costs work in proportion to the nodes
replaced or drifted, and a node whose last run failed or was cut short (no stamp, or an older one) is configured
again. The stamp lives on the node, so it survives a restart of the controller.

The digest covers every file the roles and site.yml are made of, the fleet-wide variables, and the contents of the
secret files (only as a SHA-256 inside the digest: a rotated token changes it, yet nothing about the token can be
read back from it). Image archives count by size and modification time: hashing gigabytes on every command would
cost more than it saves.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from fleetdeploy.jsondoc import JSONMapping

# What a node's configuration is made of; molecule scenarios and READMEs change nothing on a node, and neither do
# the controller-side plugins that only read (health, orchestrator, report): of those, only the convergence check.
_CONFIG_SOURCES = ("roles", "playbooks/site.yml", "playbooks/vars", "playbooks/library", "playbooks/module_utils",
                   "playbooks/action_plugins/fleet_convergence.py", "ansible.cfg")
_NOT_CONFIG = {"molecule", "README.md", "__pycache__", ".env.yml"}  # .env.yml: molecule's, per role


def roles_digest(repo_root: Path) -> str:
    """SHA-256 over the path and content of every file that shapes what site.yml does to a node."""
    digest = hashlib.sha256()
    for source in _CONFIG_SOURCES:
        root = repo_root / source
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            relative = path.relative_to(repo_root)
            if _NOT_CONFIG & set(relative.parts):
                continue
            digest.update(str(relative).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _file_fingerprint(path: Path, by_content: bool) -> str:
    try:
        if by_content:
            return hashlib.sha256(path.read_bytes()).hexdigest()
        stat = path.stat()
        return f"{stat.st_size}:{stat.st_mtime_ns}"
    except OSError:
        return "unreadable"


def config_digest(fleet_vars: JSONMapping, roles: str, secret_files: list[Path], archives: list[Path]) -> str:
    """The digest a converged node's stamp must hold, for these variables, roles and files."""
    material = {
        "roles": roles,
        "vars": fleet_vars,
        "secrets": [_file_fingerprint(p, by_content=True) for p in secret_files],
        "archives": [_file_fingerprint(p, by_content=False) for p in archives],
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()
