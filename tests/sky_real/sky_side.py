"""Runs inside SkyPilot's world (the test's throw-away HOME and API-server port), as a script, never imported.

    python sky_side.py seed '<json>'       write cluster records with SkyPilot's own state code (facts.md: SkyPilot offline)
    python sky_side.py records '<json>'    sky.get(sky.status(names, _include_credentials=True)), summarised
    python sky_side.py requests            the API server's request list: what the CLI asked SkyPilot to do

It is a separate process because `sky` reads HOME and its environment when it is imported: the pytest process
must stay outside that world. Each command prints one JSON document on its last stdout line.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

os.environ["SKYPILOT_DISABLE_USAGE_COLLECTION"] = "1"

import sky  # noqa: E402 - after the environment above
import sky.exceptions  # noqa: E402,F401
from sky import global_user_state  # noqa: E402
from sky.backends import CloudVmRayResourceHandle  # noqa: E402
from sky.client import sdk  # noqa: E402
from sky.provision.common import ClusterInfo, InstanceInfo  # noqa: E402
from sky.utils import auth_utils  # noqa: E402

# What a real cluster YAML carries that SkyPilot reads back for credentials (templates/<cloud>-ray.yml.j2): the
# provider section and `auth`, whose ssh_user differs per cloud.
_CLUSTER_YAML = """\
cluster_name: {on_cloud}
max_workers: {workers}
provider:
  type: external
  module: sky.provision.{cloud}
{provider}
auth:
  ssh_user: {user}
  ssh_private_key: {key}
"""
_PROVIDER = {
    "aws": "  region: {region}\n  use_internal_ips: false",
    "gcp": "  region: {region}\n  availability_zone: {zone}\n  project_id: fleet-test-project",
    "azure": "  location: {region}\n  resource_group: {on_cloud}-{region}",
}
_SSH_USER = {"aws": "ubuntu", "gcp": "gcpuser", "azure": "azureuser"}


def seed(spec: dict[str, Any]) -> dict[str, Any]:
    """Cluster records as `sky.launch` leaves them; `ready` True → UP, False → INIT. A cluster's `cloud` (aws unless
    given) chooses its instance type, zone form (Azure has none) and the user its cluster YAML records."""
    private_key, public_key = auth_utils.get_or_generate_keys()
    for cluster in spec["clusters"]:
        name, region, cloud = cluster["name"], cluster["region"], cluster.get("cloud", "aws")
        zone = cluster.get("zone")
        infra = f"{cloud}/{region}/{zone}" if zone else f"{cloud}/{region}"
        resources = sky.Resources(infra=infra, instance_type=cluster.get("instance_type", "t3.medium"),
                                  use_spot=True, disk_size=30)
        instances = {
            node["instance_id"]: [InstanceInfo(instance_id=node["instance_id"], internal_ip=node["internal_ip"],
                                               external_ip="127.0.0.1", tags={}, ssh_port=node["port"])]
            for node in cluster["nodes"]
        }
        # ssh_user stays unset, as on real AWS, GCP and Azure: the user must come from the record's credentials.
        info = ClusterInfo(instances=instances, head_instance_id=cluster["nodes"][0]["instance_id"],
                           provider_name=cloud, provider_config={"region": region, "use_internal_ips": False})
        on_cloud = f"{name}-2ea4"
        handle = CloudVmRayResourceHandle(
            cluster_name=name, cluster_name_on_cloud=on_cloud,
            # The DB keys the YAML by this path, whose basename must be <cluster>.yml.
            cluster_yaml=os.path.expanduser(f"~/.sky/generated/{name}.yml"),
            launched_nodes=cluster["launched_nodes"], launched_resources=resources, cluster_info=info,
        )
        # What the backend calls after provisioning: IPs and ports come from the cluster info.
        handle.update_cluster_ips(cluster_info=info)
        handle.update_ssh_ports()
        provider = _PROVIDER[cloud].format(region=region, zone=zone, on_cloud=on_cloud)
        global_user_state.set_cluster_yaml(name, _CLUSTER_YAML.format(
            on_cloud=on_cloud, workers=cluster["launched_nodes"] - 1, cloud=cloud, provider=provider,
            user=_SSH_USER[cloud], key=private_key))
        global_user_state.add_or_update_cluster(name, handle, requested_resources={resources},
                                                ready=cluster["ready"])
    return {"private_key": private_key, "public_key": public_key}


def records(names: list[str]) -> list[dict[str, Any]]:
    found = sky.get(sky.status(names, _include_credentials=True))
    out = []
    for rec in found:
        handle = rec["handle"]
        credentials = {k: v for k, v in (rec["credentials"] or {}).items() if k != "ssh_private_key_content"}
        out.append({
            "name": rec["name"], "status": str(getattr(rec["status"], "value", rec["status"])), "nodes": rec["nodes"],
            "handle_ssh_user": handle.ssh_user, "credentials": credentials,
            "ips": handle.cached_external_ips, "ports": handle.cached_external_ssh_ports,
            "instance_ids": sorted(handle.cached_cluster_info.instances),
            "cloud": str(handle.launched_resources.cloud),
        })
    return out


def _error_of(request_id: str) -> dict[str, str] | None:
    """The exception a finished request raised, as `sky.get` re-raises it on any client."""
    try:
        sky.get(request_id)
    except Exception as exc:  # noqa: BLE001 - any failure is the answer
        lines = str(exc).strip().splitlines()
        return {"type": type(exc).__name__, "module": type(exc).__module__, "message": lines[0] if lines else ""}
    return None


def requests() -> list[dict[str, Any]]:
    out = []
    for req in sdk.api_status(all_status=True):
        if req.name not in ("sky.launch", "sky.down", "sky.status"):
            continue
        body = json.loads(req.request_body)
        entry = {
            "request_id": req.request_id, "name": req.name, "status": str(req.status), "created_at": req.created_at,
            "cluster_name": body.get("cluster_name"), "cluster_names": body.get("cluster_names"),
            "include_credentials": body.get("include_credentials"), "resize": body.get("resize"),
            "purge": body.get("purge"), "task": body.get("task"),
            "override_skypilot_config": body.get("override_skypilot_config"),
            "entrypoint_command": body.get("entrypoint_command") or "",
        }
        if req.name != "sky.status":
            entry["error"] = _error_of(req.request_id)
        out.append(entry)
    return out


def main(argv: list[str]) -> None:
    command, args = argv[1], [json.loads(a) for a in argv[2:]]
    result = {"seed": seed, "records": records, "requests": requests}[command](*args)
    sys.stdout.write("\n" + json.dumps(result) + "\n")


if __name__ == "__main__":
    main(sys.argv)
