"""SkyPilot's status records read as this project's terms: the nodes they list and what `up` does to a cluster.

Records are `sky.status(..., _include_credentials=True)` answers (DESIGN.md §2): pydantic objects read like dicts;
`handle` is a CloudVmRayResourceHandle. Index 0 of the cached IPs is the head, the rest are workers.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fleetdeploy.errors import FleetError
from fleetdeploy.private_files import write_private
from fleetdeploy.providers.base import ActionKind, ClusterAction, Node
from fleetdeploy.runs.ssh import NODE_USER


def _status_value(status: Any) -> str:
    """'UP' / 'INIT' / ... from a sky.ClusterStatus (or a plain string)."""
    return str(getattr(status, "value", status))


def _instance_ids(handle: Any) -> dict[tuple[str, int], str]:
    """(ip, ssh port) -> instance id from the handle's cluster info (ip alone is not unique behind NAT)."""
    info = getattr(handle, "cached_cluster_info", None)
    found: dict[tuple[str, int], str] = {}
    if info is None:
        return found
    for instance_id, infos in info.instances.items():
        for inst in infos:
            ip = inst.external_ip or inst.internal_ip
            found[(ip, int(inst.ssh_port))] = instance_id
    return found


def nodes_from_status(records: Iterable[Any], key_store: Path | None = None, remote: bool = False,
                      own_key: str | None = None) -> list[Node]:
    """Map SkyPilot status records (with credentials) to Nodes: UP and INIT clusters, nodes with an IP only.

    An INIT cluster has lost nodes (partial spot preemption) or is still being launched: its surviving nodes are
    still worth configuring and checking (a stale address shows as unreachable, never as healthy).
    Index 0 of the cached IPs is the head; the rest are workers. Hosts are named by instance id, never by
    index, because SkyPilot orders workers by IP and that order shifts when a spot node is replaced.
    """
    nodes: list[Node] = []
    for rec in records:
        if _status_value(rec["status"]) not in ("UP", "INIT") or rec["handle"] is None:
            continue
        handle = rec["handle"]
        ips = handle.cached_external_ips
        if ips is None:
            continue
        ports = handle.cached_external_ssh_ports or [22] * len(ips)
        credentials = rec["credentials"] or {}
        # On AWS handle.ssh_user is None; the credentials carry the real user.
        user = credentials.get("ssh_user") or handle.ssh_user
        key = credentials.get("ssh_private_key")
        if key_store is not None and key and (remote or not os.access(os.path.expanduser(key), os.R_OK)):
            # A remote API server's key path is on the server (whichever way it was named: the fleet file, the
            # environment, `sky api login`): the record also carries the key, kept here 0600.
            key = _keep_key(key_store, credentials.get("ssh_private_key_content"))
        if not key and own_key:
            # A server that withholds credentials (SkyPilot drops them for its `viewer` role) leaves the operator's
            # own key (ssh.identity_file), which the ssh_access role installed for the image's login user.
            key, user = own_key, user or NODE_USER
        if not user or not key:
            # One cluster without credentials must not hide the others' nodes; it shows as short in `status`.
            continue
        resources = handle.launched_resources
        ids = _instance_ids(handle)
        for index, ip in enumerate(ips):
            if ip is None:
                continue
            port = int(ports[index]) if index < len(ports) else 22
            # Fallback for handles without cluster info: still stable per address, never per index.
            instance_id = ids.get((ip, port)) or f"ip-{ip.replace('.', '-').replace(':', '-')}-{port}"
            nodes.append(
                Node(
                    instance_id=instance_id,
                    cluster=rec["name"],
                    region=resources.region,
                    zone=resources.zone,
                    host=ip,
                    port=port,
                    user=user,
                    key_file=os.path.expanduser(key),
                    spot=bool(resources.use_spot),
                    cloud=cloud_key(resources.cloud),
                )
            )
    return nodes


def _keep_key(key_store: Path, content: object) -> str | None:
    """The private key a remote server sent, in a 0600 file named by its digest (the same key, the same file)."""
    if not isinstance(content, str) or not content.strip():
        return None
    path = key_store / f"sky-key-{hashlib.sha256(content.encode()).hexdigest()[:16]}"
    try:
        if not path.is_file() or path.read_text(encoding="utf-8") != content:
            write_private(path, content)
    except OSError as exc:
        raise FleetError(f"cannot keep the SSH key SkyPilot sent in {key_store}: {exc.strerror or exc}") from None
    return str(path)


def cloud_key(cloud: Any) -> str:
    """Our spelling of the cloud a SkyPilot Resources names (its str() is 'AWS', 'GCP', 'Azure')."""
    return str(cloud).lower() if cloud is not None else "aws"


def _launched_nodes(record: Any) -> int:
    return int(record["nodes"] if record.get("nodes") is not None else record["handle"].launched_nodes)


def decide(record: Any, wanted: int) -> ClusterAction:
    """What `up` does to one cluster, from its SkyPilot record (None when it does not exist)."""
    if record is None:
        return ClusterAction(ActionKind.LAUNCH, wanted)
    have = _launched_nodes(record)
    if have != wanted:
        return ClusterAction(ActionKind.RESIZE, wanted, have)
    if _status_value(record["status"]) != "UP":
        return ClusterAction(ActionKind.HEAL, wanted, have)
    return ClusterAction(ActionKind.NOTHING, wanted, have)
