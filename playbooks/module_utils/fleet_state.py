# -*- coding: utf-8 -*-
"""What the convergence stamp records and checks on a node (stdlib only).

Two callers: the fleet_convergence module imports it (record, and verify where the fast path is not available),
and the fleet_convergence action plugin sends this file's source to the node's python3 on stdin and calls
probe() (verify): no AnsiballZ payload, so an unchanged node costs a python3 start-up, a systemctl and a docker
call instead of a module run.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import tempfile
from typing import Any, Dict, List, Tuple

KINDS = ("files", "blocks", "absent", "directories", "packages", "services", "containers")
# How each kind names its things in the state and in drift lines ("file /etc/x", "container sensor").
KIND_LABEL = {"files": "file", "blocks": "block", "absent": "absent", "directories": "directory",
              "packages": "package", "services": "service", "containers": "container"}
PATH_KINDS = ("files", "blocks", "absent", "directories")
# A block a role manages inside a file others write too (blockinfile's markers start so): only the block, and
# the file's type, mode and owner, are the role's; a line someone adds outside it is not drift.
BLOCK_BEGIN = "# BEGIN fleetdeploy"
BLOCK_END = "# END fleetdeploy"
DPKG_STATUS = "/var/lib/dpkg/status"
ENGINE_SERVICE = "docker"
# systemd ActiveStates of a unit that is not running and not on its way up ("unknown": systemctl failed).
STOPPED_STATES = ("inactive", "failed", "deactivating")


def clean_manifest(manifest: Dict[str, Any]) -> Dict[str, List[str]]:
    """Every kind present, each a sorted list of unique names; anything else is an error."""
    clean: Dict[str, List[str]] = {kind: [] for kind in KINDS}
    for kind, items in (manifest or {}).items():
        if kind not in clean:
            raise ValueError(f"unknown manifest key {kind!r} (known: {', '.join(KINDS)})")
        for item in items or []:
            # A role that reports a registered result instead of a path must fail loudly, not stamp junk.
            if not isinstance(item, str) or not item or (kind in PATH_KINDS and not item.startswith("/")):
                raise ValueError(f"manifest {kind}: {str(item)[:80]!r} is not "
                                 f"{'an absolute path' if kind in PATH_KINDS else 'a name'}")
            clean[kind].append(item)
    return {kind: sorted(set(items)) for kind, items in clean.items()}


def _run(argv: List[str]) -> Tuple[int, str, str]:
    """A command's exit code and output; a missing program is an exit code, not an exception."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, errors="replace", check=False)
    except OSError as error:
        return 127, "", str(error)
    return proc.returncode, proc.stdout, proc.stderr


def _path_state(path: str, want_checksum: bool) -> Dict[str, Any]:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return {"exists": False}
    state: Dict[str, Any] = {"exists": True, "type": stat.S_IFMT(info.st_mode), "mode": stat.S_IMODE(info.st_mode),
                             "uid": info.st_uid, "gid": info.st_gid}
    if want_checksum and stat.S_ISREG(info.st_mode):
        with open(path, "rb") as handle:
            state["sha256"] = hashlib.sha256(handle.read()).hexdigest()
    return state


def _block_state(path: str) -> Dict[str, Any]:
    state = _path_state(path, want_checksum=False)
    if state["exists"] and stat.S_ISREG(state["type"]):
        block: List[bytes] = []
        inside = False
        with open(path, "rb") as handle:
            for line in handle:
                inside = inside or line.startswith(BLOCK_BEGIN.encode())
                if inside:
                    block.append(line)
                if line.startswith(BLOCK_END.encode()):
                    inside = False
        state["block_sha256"] = hashlib.sha256(b"".join(block)).hexdigest()
    return state


def _dpkg_packages(names: List[str]) -> Dict[str, str]:
    """Installed version per package ("" when not installed), read from dpkg's own database line by line."""
    wanted = set(names)
    found: Dict[str, str] = {}
    name = status = version = ""
    with open(DPKG_STATUS, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith("Package: "):
                name, status, version = line[9:].strip(), "", ""
            elif name in wanted and line.startswith("Status: "):
                status = line[8:].strip()
            elif name in wanted and line.startswith("Version: "):
                version = line[9:].strip()
            elif line == "\n" and name in wanted and status.endswith(" installed"):
                found[name] = version
    if name in wanted and status.endswith(" installed"):  # the last stanza needs no blank line after it
        found[name] = version
    return {name: found.get(name, "") for name in names}


def _rpm_packages(names: List[str]) -> Dict[str, str]:
    versions = {}
    for name in names:
        rc, out, _ = _run(["rpm", "-q", "--qf", "%{VERSION}-%{RELEASE}", name])
        versions[name] = out.strip() if rc == 0 else ""
    return versions


def _services(names: List[str]) -> Dict[str, str]:
    if not names:
        return {}
    rc, out, _ = _run(["systemctl", "show", "--property=Id,ActiveState,UnitFileState", "--", *names])
    if rc != 0:
        return {name: "unknown" for name in names}
    states = []
    for block in out.strip().split("\n\n"):
        fields = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        states.append(f"{fields.get('ActiveState', '?')}/{fields.get('UnitFileState', '?') or '-'}")
    # systemctl answers in the order asked, one block per unit.
    return dict(zip(names, states)) if len(states) == len(names) else {name: "unknown" for name in names}


def _containers(names: List[str]) -> Dict[str, Any]:
    if not names:
        return {}
    rc, out, err = _run(["docker", "inspect", "--type", "container", "--", *names])
    try:
        found = {item["Name"].lstrip("/"): item for item in json.loads(out or "[]")}
    except (ValueError, KeyError, TypeError):
        return {name: {"status": "docker unavailable"} for name in names}
    if rc != 0 and not found and "No such" not in err:
        return {name: {"status": "docker unavailable"} for name in names}
    tags = _tag_images(sorted({(item.get("Config") or {}).get("Image", "") for item in found.values()} - {""}))
    states: Dict[str, Any] = {}
    for name in names:
        item = found.get(name)
        if item is None:
            states[name] = {"status": "absent"}
            continue
        config = item.get("Config") or {}
        labels = config.get("Labels") or {}
        states[name] = {"status": (item.get("State") or {}).get("Status", "unknown"), "image": item.get("Image", ""),
                        "config_hash": labels.get("com.docker.compose.config-hash", ""),
                        # What the container's image name means on the node now: a retag shows here, while the
                        # container still runs the image ID it was created from.
                        "tag_image": tags.get(config.get("Image", ""), "")}
    return states


def _tag_images(images: List[str]) -> Dict[str, str]:
    """image name -> the image ID it names now (one docker call for all of them)."""
    if not images:
        return {}
    rc, out, err = _run(["docker", "image", "inspect", "--format", "{{.Id}}", "--", *images])
    ids = out.split()
    # Answers come in the order asked; with one missing, the order no longer says which is which.
    return dict(zip(images, ids)) if rc == 0 and len(ids) == len(images) else {}


def _key(kind: str, name: str) -> str:
    return f"{KIND_LABEL[kind]} {name}"


def measure(manifest: Dict[str, List[str]]) -> Dict[str, Any]:
    """The state of every managed thing, keyed "kind name" (the keys name drift without saying any value)."""
    state: Dict[str, Any] = {}
    for path in manifest["files"]:
        state[_key("files", path)] = _path_state(path, want_checksum=True)
    for path in manifest["blocks"]:
        state[_key("blocks", path)] = _block_state(path)
    for path in manifest["absent"]:
        state[_key("absent", path)] = {"exists": os.path.lexists(path)}
    for path in manifest["directories"]:
        state[_key("directories", path)] = _path_state(path, want_checksum=False)
    if manifest["packages"]:
        versions = (_dpkg_packages(manifest["packages"]) if os.path.exists(DPKG_STATUS)
                    else _rpm_packages(manifest["packages"]))
        state.update({_key("packages", name): version for name, version in versions.items()})
    # The engine's state comes in the same systemctl call: containers are only asked about when it runs.
    asked = sorted(set(manifest["services"]) | ({ENGINE_SERVICE} if manifest["containers"] else set()))
    services = _services(asked)
    state.update({_key("services", name): services[name] for name in manifest["services"]})
    if manifest["containers"] and services[ENGINE_SERVICE].split("/", 1)[0] in STOPPED_STATES:
        # Any docker call would start a stopped engine again through docker.socket: a check must change nothing.
        containers: Dict[str, Any] = {name: {"status": "engine stopped"} for name in manifest["containers"]}
    else:
        containers = _containers(manifest["containers"])
    state.update({_key("containers", name): s for name, s in containers.items()})
    return state


def measure_roles(manifests: Dict[str, Dict[str, List[str]]]) -> Dict[str, Dict[str, Any]]:
    """Each role's state, from one measurement of all of them (one systemctl and one docker call per node)."""
    union = clean_manifest({kind: [name for m in manifests.values() for name in m[kind]] for kind in KINDS})
    state = measure(union)
    return {role: {_key(kind, name): state[_key(kind, name)] for kind in KINDS for name in manifest[kind]}
            for role, manifest in manifests.items()}


def describe(key: str, recorded: Any, current: Any) -> str:
    """One line per drifted thing: what kind of change, never a checksum or a file's content."""
    if key.startswith(("file ", "block ", "directory ")):
        if not current.get("exists"):
            return f"{key}: missing"
        content = ("content", "block_sha256" if key.startswith("block ") else "sha256")
        changed = [label for label, field in (content, ("type", "type"), ("mode", "mode"),
                                              ("owner", "uid"), ("group", "gid"))
                   if recorded.get(field) != current.get(field)]
        return f"{key}: {', '.join(changed)} changed"
    if key.startswith("absent "):
        return f"{key[len('absent '):]}: present (the roles remove it)"
    if key.startswith("package "):
        return f"{key}: {'not installed' if not current else f'version {current} (was {recorded})'}"
    if key.startswith("service "):
        stopped = str(current).split("/", 1)[0] in STOPPED_STATES
        return f"{key}: {'stopped, ' if stopped else ''}{current} (was {recorded})"
    if key.startswith("container "):
        if current.get("status") != recorded.get("status"):
            return f"{key}: {current.get('status')} (was {recorded.get('status')})"
        if current.get("image") != recorded.get("image"):
            return f"{key}: runs another image"
        if current.get("tag_image") != recorded.get("tag_image"):
            return f"{key}: its image name now points at another image (retagged)"
        return f"{key}: recreated from another compose configuration"
    return f"{key}: changed"


def _unusable(reason: str, roles: List[str]) -> Dict[str, Any]:
    return {"converged": False, "drift": [reason], "run_roles": list(roles), "manifests": {}}


def verify(path: str, digest: str, roles: List[str], base_roles: List[str]) -> Dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            stamp = json.load(handle)
    except FileNotFoundError:
        return _unusable("no convergence stamp (never configured, or the last run did not end)", roles)
    except (OSError, ValueError):
        return _unusable("unreadable convergence stamp", roles)
    if not isinstance(stamp, dict) or stamp.get("digest") != digest:
        return _unusable("roles or inputs changed since the last run", roles)
    try:
        manifests = {role: clean_manifest(stamp["roles"][role]) for role in roles}
        recorded = {role: dict(stamp["state"][role]) for role in roles}
    except (ValueError, KeyError, AttributeError, TypeError):
        return _unusable("unreadable convergence stamp", roles)
    drift: List[str] = []
    drifted_roles = []
    measured = measure_roles(manifests)
    for role in roles:
        current = measured[role]
        found = [describe(key, recorded[role].get(key), current[key]) for key in sorted(current)
                 if key not in recorded[role] or recorded[role][key] != current[key]]
        drift.extend(found)
        if found:
            drifted_roles.append(role)
    run_roles = list(roles) if set(drifted_roles) & set(base_roles) else drifted_roles
    return {"converged": not drift, "drift": drift, "run_roles": run_roles, "manifests": manifests}


def record(path: str, digest: str, manifests: Dict[str, Dict[str, List[str]]]) -> None:
    stamp = {"digest": digest, "roles": manifests,
             "state": measure_roles(manifests)}
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".converged.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(stamp, out, sort_keys=True)
            out.write("\n")
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def probe(params_json: str) -> None:
    """verify() on the node, its result as JSON on stdout (the action plugin's fast path)."""
    params = json.loads(params_json)
    result = verify(params["path"], params["digest"], params["roles"], params["base_roles"])
    sys.stdout.write(json.dumps(result))
