"""TEST DOUBLE of the `sky` SDK module (SkyPilot 0.14.1) for provider unit tests: no API server, no cloud.

It keeps clusters in memory, records every call in order, and answers with the REAL SkyPilot classes:
`sky.schemas.api.responses.StatusResponse` records holding a real
`sky.backends.CloudVmRayResourceHandle` with real `sky.provision.common.ClusterInfo`/`InstanceInfo`
and a real `sky.Resources`; statuses are the real `sky.ClusterStatus` and failures the real
`sky.exceptions` classes. So attribute names and types match what the provider gets from SkyPilot.
Like the real SDK, `status/launch/down` only return a request id; work happens when `get` is called.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from typing import Any

os.environ["SKYPILOT_DISABLE_USAGE_COLLECTION"] = "1"

import sky  # noqa: E402 - the test double reuses the real classes
import sky.exceptions  # noqa: E402
from sky.backends import CloudVmRayResourceHandle  # noqa: E402
from sky.provision.common import ClusterInfo, InstanceInfo  # noqa: E402
from sky.schemas.api.responses import StatusResponse  # noqa: E402

KEY_PATH = "~/.sky/clients/abcd1234/ssh/sky-key"
KEY_CONTENT = "-----BEGIN OPENSSH PRIVATE KEY-----\nfake-key-of-the-test-double\n-----END OPENSSH PRIVATE KEY-----\n"
OWNER = "abcd1234"  # the user hash every FakeCluster was launched by


@dataclass
class FakeNode:
    instance_id: str
    ip: str | None
    port: int = 22


@dataclass
class FakeCluster:
    name: str
    region: str
    zone: str | None
    status: Any  # sky.ClusterStatus
    nodes: list[FakeNode]
    use_spot: bool = True
    with_cluster_info: bool = True


@dataclass
class SkyDouble:
    """Stands in for the `sky` module: pass `lambda: double` as the provider's sdk_loader."""

    clusters: dict[str, FakeCluster] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    launch_errors: dict[str, BaseException] = field(default_factory=dict)
    submit_errors: dict[str, BaseException] = field(default_factory=dict)
    down_errors: dict[str, BaseException] = field(default_factory=dict)
    status_error: BaseException | None = None
    launched_tasks: dict[str, Any] = field(default_factory=dict)
    launch_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    created: int = 100
    user_hash: str = OWNER  # the caller: without all_users, SkyPilot lists only this user's clusters
    _requests: dict[str, tuple[str, Any]] = field(default_factory=dict)
    _ids: Any = field(default_factory=itertools.count)

    # The real module attributes the provider uses.
    ClusterStatus = sky.ClusterStatus
    StatusRefreshMode = sky.StatusRefreshMode
    Task = sky.Task
    exceptions = sky.exceptions

    def _request(self, kind: str, payload: Any) -> str:
        rid = f"req-{next(self._ids)}-{kind}"
        self._requests[rid] = (kind, payload)
        return rid

    def add(self, cluster: FakeCluster) -> None:
        self.clusters[cluster.name] = cluster

    # --- SDK entry points (signatures follow sky.client.sdk) ---------------------------------------
    def status(
        self,
        cluster_names: list[str] | None = None,
        refresh: Any = None,
        all_users: bool = False,
        *,
        _include_credentials: bool = False,
        _summary_response: bool = False,
    ) -> str:
        self.calls.append(("status", ",".join(cluster_names or [])))
        return self._request("status", (cluster_names, _include_credentials, all_users))

    def launch(self, task: Any, cluster_name: str | None = None, retry_until_up: bool = False, **kwargs: Any) -> str:
        assert isinstance(task, sky.Task), "sky.launch gets a sky.Task"
        assert cluster_name is not None
        self.calls.append(("launch", cluster_name))
        if cluster_name in self.submit_errors:
            raise self.submit_errors[cluster_name]
        self.launched_tasks[cluster_name] = task
        self.launch_kwargs[cluster_name] = dict(kwargs)
        return self._request("launch", (cluster_name, task, bool(kwargs.get("resize"))))

    def down(self, cluster_name: str, purge: bool = False, **kwargs: Any) -> str:
        self.calls.append(("down", cluster_name))
        return self._request("down", cluster_name)

    def get(self, request_id: str) -> Any:
        kind, payload = self._requests.pop(request_id)
        self.calls.append(("get", request_id))
        return getattr(self, f"_do_{kind}")(payload)

    def stream_and_get(self, request_id: str, **kwargs: Any) -> Any:
        return self.get(request_id)

    # --- what the API server would do ----------------------------------------------------------------
    def _do_status(self, payload: tuple[list[str] | None, bool, bool]) -> list[StatusResponse]:
        names, credentials, all_users = payload
        if self.status_error is not None:
            raise self.status_error
        # backend_utils.get_clusters: without all_users, only the caller's own clusters.
        chosen = [c for n, c in sorted(self.clusters.items())
                  if (names is None or n in names) and (all_users or self.user_hash == OWNER)]
        return [status_record(c, credentials) for c in chosen]

    def _do_launch(self, payload: tuple[str, Any, bool]) -> tuple[int, CloudVmRayResourceHandle]:
        name, task, resize = payload
        if name in self.launch_errors:
            raise self.launch_errors[name]
        resources = next(iter(task.resources))
        existing = self.clusters.get(name)
        nodes = list(existing.nodes) if existing else []
        if existing and not resize and task.num_nodes > len(nodes):
            # sky's check_resources_fit_cluster: more nodes than launched needs resize=True.
            raise sky.exceptions.ResourcesMismatchError(f"{name}: num_nodes {task.num_nodes} > {len(nodes)}")
        if existing and resize and task.num_nodes < len(nodes):
            # _handle_resize_pre_provision: scale-down terminates every worker; provisioning re-creates them.
            nodes = nodes[:1]
        # Like SkyPilot: survivors are kept, only the missing nodes are created.
        nodes = [n for n in nodes if n.ip is not None]
        while len(nodes) < task.num_nodes:
            self.created += 1
            nodes.append(FakeNode(f"i-{self.created:017x}", f"203.0.113.{self.created}"))
        cluster = FakeCluster(
            name, resources.region, resources.zone, sky.ClusterStatus.UP, nodes, bool(resources.use_spot)
        )
        self.clusters[name] = cluster
        return 1, make_handle(cluster)

    def _do_down(self, name: str) -> None:
        if name in self.down_errors:
            raise self.down_errors[name]
        if name not in self.clusters:
            raise sky.exceptions.ClusterDoesNotExist(f"Cluster {name!r} does not exist.")
        del self.clusters[name]


def make_handle(cluster: FakeCluster) -> CloudVmRayResourceHandle:
    """A real CloudVmRayResourceHandle the way SkyPilot fills it for an AWS cluster."""
    infra = f"aws/{cluster.region}" + (f"/{cluster.zone}" if cluster.zone else "")
    resources = sky.Resources(infra=infra, instance_type="t3.medium", use_spot=cluster.use_spot, disk_size=30)
    instances = {
        n.instance_id: [
            InstanceInfo(
                instance_id=n.instance_id, internal_ip=f"10.0.0.{i + 1}", external_ip=n.ip, tags={}, ssh_port=n.port
            )
        ]
        for i, n in enumerate(cluster.nodes)
    }
    info = ClusterInfo(
        instances=instances,
        head_instance_id=cluster.nodes[0].instance_id if cluster.nodes else None,
        provider_name="aws",
        provider_config={"region": cluster.region, "use_internal_ips": False},
    )
    if any(n.ip is None for n in cluster.nodes):
        ips = None  # SkyPilot leaves cached IPs unset when it could not get every node's address
    else:
        ips = [(f"10.0.0.{i + 1}", n.ip) for i, n in enumerate(cluster.nodes)]
    return CloudVmRayResourceHandle(
        cluster_name=cluster.name,
        cluster_name_on_cloud=f"{cluster.name}-2ea4",
        cluster_yaml=None,
        launched_nodes=len(cluster.nodes),
        launched_resources=resources,
        stable_internal_external_ips=ips,
        stable_ssh_ports=None if ips is None else [n.port for n in cluster.nodes],
        cluster_info=info if cluster.with_cluster_info else None,
    )


def status_record(cluster: FakeCluster, include_credentials: bool) -> StatusResponse:
    """A real StatusResponse as `sky.get(sky.status(..., _include_credentials=...))` returns it."""
    credentials = None
    if include_credentials:
        credentials = {
            "ssh_user": "ubuntu",
            "ssh_private_key": KEY_PATH,
            # backend_utils adds the key itself (0.14.1): a remote client cannot read the server's path.
            "ssh_private_key_content": KEY_CONTENT,
            "ssh_control_name": cluster.name,
            "ssh_proxy_command": None,
        }
    return StatusResponse(
        name=cluster.name,
        launched_at=1_700_000_000,
        handle=make_handle(cluster),
        last_use="sky launch",
        status=cluster.status,
        autostop=-1,
        to_down=False,
        cluster_hash="hash-" + cluster.name,
        cluster_ever_up=True,
        user_hash=OWNER,
        user_name="tester",
        workspace="default",
        is_managed=False,
        credentials=credentials,
        nodes=len(cluster.nodes),
        cloud="AWS",
        region=cluster.region,
    )
