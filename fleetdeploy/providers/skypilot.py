"""SkyPilot provider: one cluster per fleet region, launched/healed/removed through the SkyPilot SDK.

`sky` is imported only by `load_sky`, called from the methods that talk to SkyPilot: importing it costs
seconds and starts nothing useful for `plan`, `--help` or config validation (DESIGN.md §2).
"""

from __future__ import annotations

import functools
import os
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from fleetdeploy.config import Fleet
from fleetdeploy.errors import FleetError
from fleetdeploy.nodes import ClusterOutcome, ClusterPlan, Node, ProgressCallback
from fleetdeploy.providers.skypilot_task import render_task, to_yaml

SdkLoader = Callable[[], Any]
MAX_IN_FLIGHT = 4
_MAX_ERROR_CHARS = 300


def load_sky() -> Any:
    """Import the SkyPilot SDK (usage collection off first: it would phone home on import)."""
    os.environ["SKYPILOT_DISABLE_USAGE_COLLECTION"] = "1"
    import sky  # noqa: PLC0415 - deliberately lazy
    import sky.exceptions  # noqa: PLC0415,F401 - makes sky.exceptions available as an attribute

    return sky


def _status_value(status: Any) -> str:
    """'UP' / 'INIT' / ... from a sky.ClusterStatus (or a plain string)."""
    return str(getattr(status, "value", status))


def _is(sky: Any, exc: BaseException, name: str) -> bool:
    cls = getattr(getattr(sky, "exceptions", None), name, None)
    return isinstance(cls, type) and isinstance(exc, cls)


def describe_error(sky: Any, exc: BaseException) -> str:
    """One line for a SkyPilot failure, with a hint for the failures users actually meet."""
    first = (str(exc).strip().splitlines() or [""])[0]
    hints: list[tuple[str, str]] = [
        ("CloudUserIdentityError", "AWS credentials are missing or unusable (run: sky check aws)"),
        ("NoCloudAccessError", "no usable cloud access (run: sky check aws)"),
        ("ClusterDoesNotExist", "cluster does not exist"),
    ]
    for name, hint in hints:
        if _is(sky, exc, name):
            text = f"{hint}: {first}" if first else hint
            return text[:_MAX_ERROR_CHARS]
    try:
        import requests  # noqa: PLC0415 - only needed to classify this error

        if isinstance(exc, requests.exceptions.ConnectionError):
            return "cannot reach the SkyPilot API server or the AWS instance catalog (network?)"[:_MAX_ERROR_CHARS]
    except ImportError:
        pass
    return f"{type(exc).__name__}: {first}"[:_MAX_ERROR_CHARS]


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


def nodes_from_status(records: Iterable[Any]) -> list[Node]:
    """Map SkyPilot status records (with credentials) to Nodes: UP clusters only, nodes with an IP only.

    Index 0 of the cached IPs is the head; the rest are workers. Hosts are named by instance id, never by
    index, because SkyPilot orders workers by IP and that order shifts when a spot node is replaced.
    """
    nodes: list[Node] = []
    for rec in records:
        if _status_value(rec["status"]) != "UP" or rec["handle"] is None:
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
                )
            )
    return nodes


class SkyPilotProvider:
    """Provider for AWS spot nodes through SkyPilot; one cluster `<fleet>-<region>` per region."""

    def __init__(self, fleet: Fleet, sdk_loader: SdkLoader = load_sky, max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self._fleet = fleet
        self._load = sdk_loader
        self._max_in_flight = max(1, max_in_flight)

    def _names(self) -> dict[str, str]:
        return {self._fleet.cluster_name(region): region for region in sorted(self._fleet.regions)}

    def extra_inventory_vars(self) -> dict[str, object]:
        """Cloud nodes need nothing beyond the fleet's own variables."""
        return {}

    def plan(self) -> list[ClusterPlan]:
        """What `up` would ask SkyPilot for; no SDK import, no cloud call."""
        plans = []
        for name, region in self._names().items():
            spec = self._fleet.regions[region]
            plans.append(
                ClusterPlan(
                    cluster=name,
                    region=region,
                    zone=spec.zone,
                    num_nodes=spec.count,
                    instance_type=spec.instance_type or self._fleet.defaults.instance_type,
                    spot=self._fleet.defaults.spot,
                    rendered_task=to_yaml(render_task(self._fleet, region)),
                )
            )
        return plans

    def _records(self, sky: Any, names: Sequence[str], credentials: bool = False) -> dict[str, Any]:
        records = sky.get(sky.status(list(names), _include_credentials=credentials))
        return {rec["name"]: rec for rec in records if rec["name"] in names}

    def _action(self, record: Any, count: int) -> str:
        if record is None:
            return "launched"
        nodes = record["nodes"] if "nodes" in record else record["handle"].launched_nodes
        if _status_value(record["status"]) == "UP" and nodes >= count:
            return "unchanged"
        return "relaunched"

    def up(self, progress: ProgressCallback) -> list[ClusterOutcome]:
        """Launch missing clusters and heal INIT / short ones; one failing region never stops the others."""
        names = self._names()
        sky = self._load()
        try:
            records = self._records(sky, list(names))
        except Exception as exc:  # noqa: BLE001 - every SDK failure becomes an outcome
            return self._all_failed(names, describe_error(sky, exc), progress)
        outcomes: dict[str, ClusterOutcome] = {}
        work: list[tuple[str, str, Callable[[], Any]]] = []
        for name, region in names.items():
            count = self._fleet.regions[region].count
            action = self._action(records.get(name), count)
            if action == "unchanged":
                record = records[name]
                nodes = record["nodes"] if "nodes" in record else record["handle"].launched_nodes
                # SkyPilot cannot shrink a cluster in place; say so instead of silently ignoring the count.
                extra = f" ({nodes} nodes > {count} asked: run down, then up, to shrink)" if nodes > count else ""
                progress(name, f"up, nothing to do{extra}")
                outcomes[name] = ClusterOutcome(name, region, True, "unchanged")
                continue
            verb = "launching" if action == "launched" else "relaunching (heal)"
            progress(name, f"{verb} {count} node(s)")
            work.append((name, action, self._launcher(sky, name, region)))
        outcomes.update(self._run(sky, names, work, progress))
        return [outcomes[name] for name in names]

    def _launcher(self, sky: Any, name: str, region: str) -> Callable[[], Any]:
        def submit() -> Any:
            task = sky.Task.from_yaml_config(render_task(self._fleet, region))
            return sky.launch(task, cluster_name=name, retry_until_up=False, down=False)

        return submit

    def _run(
        self,
        sky: Any,
        names: dict[str, str],
        work: list[tuple[str, str, Callable[[], Any]]],
        progress: ProgressCallback,
    ) -> dict[str, ClusterOutcome]:
        """Submit requests (at most max_in_flight outstanding), then wait for each in submission order."""
        outcomes: dict[str, ClusterOutcome] = {}
        pending = deque(work)
        in_flight: deque[tuple[str, str, Any]] = deque()
        while pending or in_flight:
            while pending and len(in_flight) < self._max_in_flight:
                name, action, submit = pending.popleft()
                try:
                    in_flight.append((name, action, submit()))
                    progress(name, "submitted")
                except Exception as exc:  # noqa: BLE001
                    outcomes[name] = self._failed(name, names[name], describe_error(sky, exc), progress)
            if not in_flight:
                continue
            name, action, request_id = in_flight.popleft()
            try:
                sky.get(request_id)
            except Exception as exc:  # noqa: BLE001
                if action == "removed" and _is(sky, exc, "ClusterDoesNotExist"):
                    progress(name, "already gone")
                    outcomes[name] = ClusterOutcome(name, names[name], True, "unchanged")
                    continue
                outcomes[name] = self._failed(name, names[name], describe_error(sky, exc), progress)
                continue
            progress(name, action)
            outcomes[name] = ClusterOutcome(name, names[name], True, action)
        return outcomes

    def nodes(self) -> list[Node]:
        """Every ready node of this fleet's UP clusters."""
        sky = self._load()
        names = list(self._names())
        try:
            records = self._records(sky, names, credentials=True)
        except Exception as exc:  # noqa: BLE001
            raise FleetError(f"cannot read cluster status from SkyPilot: {describe_error(sky, exc)}") from None
        return nodes_from_status(records[name] for name in names if name in records)

    def down(self, progress: ProgressCallback) -> list[ClusterOutcome]:
        """Tear down this fleet's clusters (and only those); a missing cluster is not an error."""
        names = self._names()
        sky = self._load()
        try:
            records = self._records(sky, list(names))
        except Exception as exc:  # noqa: BLE001
            return self._all_failed(names, describe_error(sky, exc), progress)
        outcomes: dict[str, ClusterOutcome] = {}
        work: list[tuple[str, str, Callable[[], Any]]] = []
        for name, region in names.items():
            if name not in records:
                progress(name, "not found, nothing to remove")
                outcomes[name] = ClusterOutcome(name, region, True, "unchanged")
                continue
            progress(name, "tearing down")
            work.append((name, "removed", functools.partial(sky.down, name)))
        outcomes.update(self._run(sky, names, work, progress))
        return [outcomes[name] for name in names]

    def _failed(self, name: str, region: str, error: str, progress: ProgressCallback) -> ClusterOutcome:
        progress(name, f"failed: {error}")
        return ClusterOutcome(name, region, False, "failed", error)

    def _all_failed(self, names: dict[str, str], error: str, progress: ProgressCallback) -> list[ClusterOutcome]:
        return [self._failed(name, region, error, progress) for name, region in names.items()]
