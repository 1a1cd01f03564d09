"""`deploy.py import-legacy`: a fleet file made from the legacy deployer's config (amauo 3.0.x on PyPI, and its
predecessor spot-deployer v1.x: bacalhau-project/aws-spot-deployer), plus a note for every setting that has no
equivalent here.

Both read `./config.yaml` the same way (core/config.py SimpleConfig): an `aws:` mapping and a `regions:` list of
one-key mappings (`- us-west-2: {machine_type: t3.medium, image: auto}`). There is no count per region:
`aws.total_instances` is split by commands/create.py's rule (split_instances). The orchestrator's endpoint and
token are files (`orchestrator_endpoint`, `orchestrator_token`): spot-deployer v1.0.x read them from
`files_directory` ("files"); amauo ships them inside its upload, `instance-files/etc/bacalhau/` (3.0.20+ names
that directory `files_directory`), or `.spot/files/`. The fleet file holds the endpoint (not a secret) and the
token file's path, never the token.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError

from fleetdeploy.errors import InputError
from fleetdeploy.fleet.fleetfile import one_line
from fleetdeploy.fleet.model import DEFAULT_BACALHAU_VERSION
from fleetdeploy.fleet.ssh_spec import SshSpec
from fleetdeploy.jsondoc import JSON, JSONObject, as_list, as_object

ENDPOINT_FILE = "orchestrator_endpoint"
TOKEN_FILE = "orchestrator_token"
# Where the legacy tool's users keep those two files, relative to the config's directory, after files_directory.
FILE_PLACES = ("files", "instance-files/etc/bacalhau", ".spot/files")
AWS_CREDENTIALS_PLACES = ("instance-files/etc/aws/credentials/aws-credentials", "credentials/aws-credentials")
# The sensor release this project's example fleet pins: legacy compose files ran `:latest`, which we refuse.
SENSOR_VERSION = "v1.17.0"
_AMI = re.compile(r"ami-[0-9a-f]{8,17}")
# The legacy tool's own key pair: the fleet file's ssh.authorized_keys and ssh.identity_file.
SSH_KEYS = ("public_ssh_key_path", "private_ssh_key_path")

# Legacy keys with no equivalent here, and why (everything under `aws:` not mapped below).
NO_EQUIVALENT = {
    "username": "SkyPilot logs in with its image's user and its own key",
    "ssh_key_name": "SkyPilot manages the EC2 key pair",
    "files_directory": "the roles configure the nodes; custom files are not uploaded (use role_vars)",
    "scripts_directory": "the roles configure the nodes; custom scripts are not run",
    "cloud_init_template": "the roles configure the nodes; no cloud-init template is used",
    "startup_script": "the roles configure the nodes; custom scripts are not run",
    "additional_commands_script": "the roles configure the nodes; custom scripts are not run",
    "docker_compose_template": "the bacalhau and sensor roles write their own compose files",
    "bacalhau_data_dir": "the bacalhau role's bacalhau_data_dir (role_vars) if it must differ",
    "bacalhau_node_dir": "unused by the legacy tool too",
    "bacalhau_config_template": "the bacalhau role renders the config from the fleet file",
    "security_group_name": "SkyPilot owns the network (the legacy tool ignored it too)",
    "use_dedicated_vpc": "SkyPilot owns the network",
    "ensure_default_vpc": "SkyPilot owns the network",
    "vpc_tag_name": "SkyPilot owns the network",
    "associate_public_ip": "SkyPilot owns the network",
    "spot_price_limit": "the legacy tool checked it but never sent it to EC2 (no MaxPrice); watch.max_hourly_price "
                        "is a fleet-wide cap on what the watcher launches, a different thing",
    "tags": "EC2 tags; this fleet's instances carry SkyPilot's labels (fleet, region), and `labels` are Bacalhau node "
            "labels",
}


@dataclass
class LegacyImport:
    fleet: JSONObject
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        header = "# Made by `deploy.py import-legacy` from the legacy deployer's config; review before `up`.\n"
        return header + yaml.safe_dump(self.fleet, sort_keys=False, default_flow_style=False)


def split_instances(total: int, regions: list[str]) -> dict[str, int]:
    """The legacy rule (commands/create.py, cmd_create): an even split, the remainder one each to the first regions
    in list order; a region left with none is dropped."""
    share, remainder = divmod(total, len(regions))
    counts = {region: share + (1 if index < remainder else 0) for index, region in enumerate(regions)}
    return {region: count for region, count in counts.items() if count > 0}


def _read_config(path: Path) -> JSONObject:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read it ({type(exc).__name__})") from None
    except yaml.YAMLError:
        raise InputError(f"{path}: not YAML") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: not a legacy deployer config (the top level must be a mapping)")
    if "num_nodes" in data or "resources" in data:
        raise InputError(f"{path}: a SkyPilot task (spot-deployer v2.x), not its config.yaml: write the fleet file "
                         "by hand from its num_nodes, instance_type and disk_size")
    if "max_instances" in data or "bacalhau" in data:
        raise InputError(f"{path}: the v0.0.x format (max_instances, bacalhau.token inline) is not supported: "
                         "upgrade it with `amauo setup`, or write the fleet file by hand")
    if not isinstance(data.get("aws"), dict) or not isinstance(data.get("regions"), list):
        raise InputError(f"{path}: not a legacy deployer config (it needs an `aws:` mapping and a `regions:` list)")
    return data


def _regions(path: Path, entries: list[JSON]) -> list[tuple[str, JSONObject]]:
    regions: list[tuple[str, JSONObject]] = []
    for entry in entries:
        if not isinstance(entry, dict) or len(entry) != 1:
            raise InputError(f"{path}: each `regions:` entry must be one `- <region>: {{machine_type, image}}`")
        ((name, settings),) = entry.items()
        if any(name == seen for seen, _ in regions):
            raise InputError(f"{path}: region {name} is listed twice")
        regions.append((str(name), as_object(settings)))
    if not regions:
        raise InputError(f"{path}: `regions:` is empty")
    return regions


def _total(path: Path, aws: JSONObject) -> int:
    total = aws.get("total_instances", 3)  # the legacy loader's default
    if not isinstance(total, int) or isinstance(total, bool) or total < 1:
        raise InputError(f"{path}: aws.total_instances must be a whole number >= 1 (got {total!r})")
    return total


def _places(base: Path, aws: JSONObject, files_dir: Path | None) -> Iterator[Path]:
    if files_dir is not None:
        yield files_dir
        return
    configured = aws.get("files_directory")
    if isinstance(configured, str) and configured:
        yield base / configured
        yield base / configured / "etc" / "bacalhau"
    yield from (base / place for place in FILE_PLACES)


def _orchestrator(path: Path, aws: JSONObject, files_dir: Path | None) -> tuple[str, Path]:
    places = list(dict.fromkeys(_places(path.parent, aws, files_dir)))
    for place in places:
        endpoint_file, token_file = place / ENDPOINT_FILE, place / TOKEN_FILE
        if endpoint_file.is_file() and token_file.is_file():
            try:
                endpoint = endpoint_file.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise InputError(f"{endpoint_file}: cannot read it ({type(exc).__name__})") from None
            if not endpoint:
                raise InputError(f"{endpoint_file}: empty")
            return endpoint, token_file.resolve()
    looked = ", ".join(str(place) for place in places)
    raise InputError(f"no {ENDPOINT_FILE} and {TOKEN_FILE} found (looked in {looked}): give --files DIR")


def _fleet_name(path: Path, aws: JSONObject, name: str | None) -> str:
    if name:
        return name
    project = as_object(aws.get("tags")).get("Project")
    source = project if isinstance(project, str) and project else path.resolve().parent.name
    cleaned = re.sub(r"[^a-z0-9-]+", "-", source.lower()).strip("-")
    if not cleaned[:1].isalpha():
        cleaned = f"fleet-{cleaned}"
    return cleaned[:40].strip("-")


def _ssh(path: Path, aws: JSONObject) -> tuple[JSONObject, str]:
    """The operator's own key pair, as the fleet file's `ssh:` section (the paths as written: `~` is whoever runs
    it), when it is one this machine can check; else a note saying why it was left out."""
    public, private = (str(aws.get(key) or "").strip() for key in SSH_KEYS)
    if not public:
        return {}, ""
    ssh: JSONObject = {"authorized_keys": [public]}
    if private:
        ssh["identity_file"] = private
    try:
        SshSpec.model_validate(ssh, context={"base_dir": path.resolve().parent})
    except ValidationError as exc:
        return {}, (f"aws.{' and aws.'.join(k for k in SSH_KEYS if aws.get(k))}: not carried over "
                    f"(ssh.{one_line(exc, SshSpec)}); the nodes still take SkyPilot's key")
    return ssh, ("aws.public_ssh_key_path -> ssh.authorized_keys"
                 + (", aws.private_ssh_key_path -> ssh.identity_file" if private else "")
                 + ": the nodes accept your key (the ssh_access role), and the tool offers it before SkyPilot's")


def import_legacy(path: Path, files_dir: Path | None = None, name: str | None = None) -> LegacyImport:
    """The fleet file for a legacy config, and the notes on what did not carry over."""
    data = _read_config(path)
    aws = as_object(data["aws"])
    regions = _regions(path, as_list(data["regions"]))
    total = _total(path, aws)
    counts = split_instances(total, [region for region, _ in regions])
    notes = [f"aws.total_instances {total} split as the legacy tool does: "
             + ", ".join(f"{region} {count}" for region, count in counts.items())]
    dropped = [region for region, _ in regions if region not in counts]
    if dropped:
        notes.append(f"{', '.join(dropped)}: no instance in the legacy split, so not in the fleet file")

    chosen = {region: str(settings.get("machine_type") or "t3.medium") for region, settings in regions
              if region in counts}
    common_type = next(iter(chosen.values())) if len(set(chosen.values())) == 1 else None
    defaults: JSONObject = {"instance_type": common_type or "t3.medium", "spot": True}
    storage = aws.get("instance_storage_gb")
    if isinstance(storage, int) and not isinstance(storage, bool):
        defaults["disk_size_gb"] = storage

    fleet_regions: JSONObject = {}
    for region, settings in regions:
        if region not in counts:
            continue
        spec: JSONObject = {"count": counts[region]}
        if common_type is None:
            spec["instance_type"] = chosen[region]
        image = settings.get("image")
        if isinstance(image, str) and _AMI.fullmatch(image):
            spec["image_id"] = image
        else:
            notes.append(f"{region}: image {image or '(none)'!s} means the newest Ubuntu AMI to the legacy tool; "
                         "here SkyPilot's default image is used")
        fleet_regions[region] = spec
    if any("image_id" in as_object(spec) for spec in fleet_regions.values()):
        notes.append("AMIs are per region: each region with one keeps it as its image_id")

    endpoint, token_file = _orchestrator(path, aws, files_dir)
    fleet: JSONObject = {
        "name": _fleet_name(path, aws, name),
        "provider": "skypilot",
        "regions": fleet_regions,
        "defaults": defaults,
        "orchestrator": {"endpoint": endpoint, "token_file": str(token_file)},
        "bacalhau": {"version": DEFAULT_BACALHAU_VERSION},
        "sensor": {"version": SENSOR_VERSION},
    }
    notes.append(f"bacalhau {DEFAULT_BACALHAU_VERSION} and sensor {SENSOR_VERSION} are pinned (the legacy compose "
                 "files ran :latest images): change them to the versions you run")
    credentials = next((path.parent / place for place in AWS_CREDENTIALS_PLACES
                        if (path.parent / place).is_file()), None)
    if credentials is not None:
        fleet["aws_credentials"] = {"file": str(credentials.resolve())}
        notes.append(f"the nodes' S3 credentials: {credentials} (the aws_credentials role installs them, 0600)")
    ssh, ssh_note = _ssh(path, aws)
    if ssh:
        fleet["ssh"] = ssh
    if ssh_note:
        notes.append(ssh_note)
    for key, why in NO_EQUIVALENT.items():
        if key in aws:
            notes.append(f"aws.{key}: no equivalent ({why})")
    unknown = sorted(set(aws) - set(NO_EQUIVALENT) - set(SSH_KEYS) - {"total_instances", "instance_storage_gb"})
    if unknown:
        notes.append(f"aws.{', aws.'.join(unknown)}: not a key the legacy tool reads; ignored")
    return LegacyImport(fleet, notes)

