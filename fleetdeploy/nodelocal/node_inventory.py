"""One node's own inventory for a node-local run, made from the controller's (runs/inventory.py).

The same groups, variables and config digest, with that node alone in them and a local connection. Variables that
name files on the controller are pointed at the copies the session puts in the node's run directory: secrets
(sent as text, kept 0600) and image archives (sent only when the node lacks their images). The secrets' values
never enter this text: it holds paths, like the controller's inventory.
"""

from __future__ import annotations

import configparser
import copy
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from fleetdeploy.jsondoc import JSONObject, as_object
from fleetdeploy.paths import ROLES_DIR
from fleetdeploy.runs.inventory import CONTROLLER_ONLY_PREFIX

NODE_BASE = "/var/lib/fleetdeploy"
AWS_ROLE_VARS = ROLES_DIR / "aws_credentials" / "vars" / "main.yml"
# Variables naming a secret file on the controller -> its name in the node's run directory.
SECRET_FILES = {"bacalhau_orchestrator_token_file": "orchestrator-token",
                "aws_credentials_source_file": "aws-credentials"}
# Variables naming an image archive on the controller -> the variable naming the image it holds.
ARCHIVE_FILES = {"bacalhau_image_archive": "bacalhau_image", "sensor_image_archive": "sensor_image",
                 "bacalhau_job_image_archive": "bacalhau_job_image"}
_CONNECTION_VARS = ("ansible_host", "ansible_port", "ansible_user", "ansible_ssh_private_key_file",
                    "ansible_ssh_extra_args", "fleet_node_key_file")


@dataclass
class NodeFiles:
    """What one node's run needs beside the bundle: its inventory's text, the secret files' controller paths and
    the archives (controller path -> images in it), each by its name in the run directory."""

    inventory: str
    secrets: dict[str, Path] = field(default_factory=dict)
    archives: dict[str, tuple[Path, list[str]]] = field(default_factory=dict)
    aws_profile: str = "default"  # the one profile of the AWS credentials file a node is sent


def run_dir(run_id: str, base: str = NODE_BASE) -> str:
    return f"{base}/run-{run_id}"


def node_files(inventory: JSONObject, host: str, run_id: str, base: str = NODE_BASE) -> NodeFiles:
    """`host`'s inventory for a run on the node (run id `run_id`, under `base`), and the files it refers to."""
    document = copy.deepcopy(inventory)
    where = run_dir(run_id, base)
    files = NodeFiles(inventory="")
    found = False
    for group in as_object(as_object(document["all"])["children"]).values():
        group_doc = as_object(group)
        variables = as_object(group_doc.get("vars") or {})
        for name in [key for key in variables if key.startswith(CONTROLLER_ONLY_PREFIX)]:
            del variables[name]
        files.aws_profile = str(variables.get("aws_credentials_profile") or "default")
        for name, file_name in SECRET_FILES.items():
            if variables.get(name):
                files.secrets[file_name] = Path(str(variables[name]))
                variables[name] = f"{where}/secrets/{file_name}"
        archives_by_path: dict[str, str] = {}
        for name, image_var in ARCHIVE_FILES.items():
            if not variables.get(name):
                continue
            source = str(variables[name])
            # The source's own name (the image_archive role keeps the copy under it), one directory per archive.
            file_name = archives_by_path.setdefault(source, f"archives/{len(archives_by_path)}/{Path(source).name}")
            images = files.archives.setdefault(file_name, (Path(source), []))[1]
            images.append(str(variables.get(image_var, "")))
            variables[name] = f"{where}/{file_name}"
        for region in as_object(group_doc.get("children") or {}).values():
            hosts = as_object(as_object(region).get("hosts") or {})
            for name in list(hosts):
                if name != host:
                    del hosts[name]
                    continue
                found = True
                host_vars = as_object(hosts[name])
                for key in _CONNECTION_VARS:
                    host_vars.pop(key, None)
                host_vars.update(ansible_connection="local", ansible_python_interpreter="/usr/bin/python3")
    if not found:
        raise KeyError(f"{host} is not in the inventory")
    files.inventory = yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
    return files


def credentials_for_node(text: str, profile: str) -> str:
    """The AWS credentials file cut down to what the aws_credentials role copies to a node: the fleet's profile and
    its key entries (vars/main.yml), never the file's other profiles. Nothing else of it is sent to a node."""
    keys = yaml.safe_load(AWS_ROLE_VARS.read_text(encoding="utf-8"))
    wanted = [*keys["__aws_credentials_required_keys"], *keys["__aws_credentials_optional_keys"]]
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys as written, as from_ini reads them
    parser.read_string(text)
    if not parser.has_section(profile):
        return ""
    entries = [f"{key} = {parser.get(profile, key)}" for key in wanted if parser.has_option(profile, key)]
    lines = [f"[{profile}]", *entries]
    return "\n".join(lines) + "\n"


def read_inventory(path: Path) -> JSONObject:
    return as_object(yaml.safe_load(path.read_text(encoding="utf-8")))
