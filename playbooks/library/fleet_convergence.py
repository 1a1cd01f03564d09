#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Ansible module: a node's convergence stamp, and the check that nothing it records has drifted (stdlib only)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from typing import Any, Dict, List

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
---
module: fleet_convergence
short_description: Record what the roles manage on a node, or check that none of it has drifted
description:
  - C(mode=record) (site.yml's last step) writes the stamp: the run's digest (roles and inputs), the manifest of
    what the roles manage, and the state of each managed thing (file checksum, mode and owner; package
    version; service active/enabled; container status, image and compose config hash).
  - C(mode=verify) (site.yml's first step) reads the stamp back, compares its digest with this run's and
    measures every recorded thing again. The node is converged only when the digest and every state match;
    otherwise C(drift) names what differs. It never changes anything.
  - Costs one module run, a C(systemctl show) and a C(docker inspect): an unchanged node ends there. A node whose
    stamp holds this digest runs only the roles whose managed things drifted: every other role's state was
    just measured to be what its last complete run left, which is what applying it again would produce.
options:
  path:
    description: The stamp file (root-owned, 0600: it holds checksums of files with secrets).
    type: path
    required: true
  digest:
    description: The digest of this run's roles and inputs (the inventory's fleet_config_digest).
    type: str
    required: true
  mode:
    description: Check the stamp (verify) or write it (record).
    type: str
    choices: [verify, record]
    default: verify
  roles:
    description:
      - verify - every role site.yml applies, in order; C(run_roles) is a subset of them.
      - record - per role, what it manages (its C(<role>_managed) fact, or the manifest the last stamp held for a
        role this run skipped). Keys C(files), C(absent), C(directories), C(packages), C(services),
        C(containers); each a list.
    type: raw
    required: true
  base_roles:
    description: Roles the others run on (verify); drift in one of them runs every role.
    type: list
    elements: str
    default: []
author: fleet deployer
"""

EXAMPLES = r"""
- name: Check the node against its convergence stamp
  fleet_convergence:
    path: /var/lib/fleetdeploy/converged.json
    digest: "{{ fleet_config_digest }}"
    roles: [docker, bacalhau]
    base_roles: [docker]
  register: convergence
"""

RETURN = r"""
converged:
  description: The stamp holds this digest and every recorded thing is as recorded.
  returned: always
  type: bool
drift:
  description: What differs, one line each (no values, only names and kinds of change).
  returned: always
  type: list
  elements: str
run_roles:
  description: >-
    The roles this run must apply (verify): none when converged; the roles whose managed things drifted when the
    stamp holds this digest (every role when a base role drifted); every role when there is no usable stamp.
  returned: always
  type: list
  elements: str
manifests:
  description: Per role, the manifest the stamp holds (verify; empty without a usable stamp).
  returned: always
  type: dict
"""

KINDS = ("files", "absent", "directories", "packages", "services", "containers")
# How each kind names its things in the state and in drift lines ("file /etc/x", "container sensor").
KIND_LABEL = {"files": "file", "absent": "absent", "directories": "directory", "packages": "package",
              "services": "service", "containers": "container"}
PATH_KINDS = ("files", "absent", "directories")
DPKG_STATUS = "/var/lib/dpkg/status"


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


def _dpkg_packages(names: List[str]) -> Dict[str, str]:
    """Installed version per package ("" when not installed), read from dpkg's own database."""
    wanted = set(names)
    found: Dict[str, str] = {}
    with open(DPKG_STATUS, encoding="utf-8", errors="replace") as handle:
        stanzas = handle.read().split("\n\n")
    for stanza in stanzas:
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and line[0] != " ")
        name = fields.get("Package")
        if name in wanted and fields.get("Status", "").endswith(" installed"):
            found[name] = fields.get("Version", "")
    return {name: found.get(name, "") for name in names}


def _rpm_packages(module: AnsibleModule, names: List[str]) -> Dict[str, str]:
    versions = {}
    for name in names:
        rc, out, _ = module.run_command(["rpm", "-q", "--qf", "%{VERSION}-%{RELEASE}", name])
        versions[name] = out.strip() if rc == 0 else ""
    return versions


def _services(module: AnsibleModule, names: List[str]) -> Dict[str, str]:
    if not names:
        return {}
    rc, out, _ = module.run_command(["systemctl", "show", "--property=Id,ActiveState,UnitFileState", "--", *names])
    if rc != 0:
        return {name: "unknown" for name in names}
    states = []
    for block in out.strip().split("\n\n"):
        fields = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        states.append(f"{fields.get('ActiveState', '?')}/{fields.get('UnitFileState', '?') or '-'}")
    # systemctl answers in the order asked, one block per unit.
    return dict(zip(names, states)) if len(states) == len(names) else {name: "unknown" for name in names}


def _containers(module: AnsibleModule, names: List[str]) -> Dict[str, Any]:
    if not names:
        return {}
    rc, out, err = module.run_command(["docker", "inspect", "--type", "container", "--", *names])
    try:
        found = {item["Name"].lstrip("/"): item for item in json.loads(out or "[]")}
    except (ValueError, KeyError, TypeError):
        return {name: {"status": "docker unavailable"} for name in names}
    if rc != 0 and not found and "No such" not in err:
        return {name: {"status": "docker unavailable"} for name in names}
    states: Dict[str, Any] = {}
    for name in names:
        item = found.get(name)
        if item is None:
            states[name] = {"status": "absent"}
            continue
        labels = (item.get("Config") or {}).get("Labels") or {}
        states[name] = {"status": (item.get("State") or {}).get("Status", "unknown"), "image": item.get("Image", ""),
                        "config_hash": labels.get("com.docker.compose.config-hash", "")}
    return states


def _key(kind: str, name: str) -> str:
    return f"{KIND_LABEL[kind]} {name}"


def measure(module: AnsibleModule, manifest: Dict[str, List[str]]) -> Dict[str, Any]:
    """The state of every managed thing, keyed "kind name" (the keys name drift without saying any value)."""
    state: Dict[str, Any] = {}
    for path in manifest["files"]:
        state[_key("files", path)] = _path_state(path, want_checksum=True)
    for path in manifest["absent"]:
        state[_key("absent", path)] = {"exists": os.path.lexists(path)}
    for path in manifest["directories"]:
        state[_key("directories", path)] = _path_state(path, want_checksum=False)
    if manifest["packages"]:
        versions = (_dpkg_packages(manifest["packages"]) if os.path.exists(DPKG_STATUS)
                    else _rpm_packages(module, manifest["packages"]))
        state.update({_key("packages", name): version for name, version in versions.items()})
    state.update({_key("services", name): s for name, s in _services(module, manifest["services"]).items()})
    state.update({_key("containers", name): s for name, s in _containers(module, manifest["containers"]).items()})
    return state


def measure_roles(module: AnsibleModule, manifests: Dict[str, Dict[str, List[str]]]) -> Dict[str, Dict[str, Any]]:
    """Each role's state, from one measurement of all of them (one systemctl and one docker call per node)."""
    union = clean_manifest({kind: [name for m in manifests.values() for name in m[kind]] for kind in KINDS})
    state = measure(module, union)
    return {role: {_key(kind, name): state[_key(kind, name)] for kind in KINDS for name in manifest[kind]}
            for role, manifest in manifests.items()}


def describe(key: str, recorded: Any, current: Any) -> str:
    """One line per drifted thing: what kind of change, never a checksum or a file's content."""
    if key.startswith(("file ", "directory ")):
        if not current.get("exists"):
            return f"{key}: missing"
        changed = [label for label, field in (("content", "sha256"), ("type", "type"), ("mode", "mode"),
                                              ("owner", "uid"), ("group", "gid"))
                   if recorded.get(field) != current.get(field)]
        return f"{key}: {', '.join(changed)} changed"
    if key.startswith("absent "):
        return f"{key[len('absent '):]}: present (the roles remove it)"
    if key.startswith("package "):
        return f"{key}: {'not installed' if not current else f'version {current} (was {recorded})'}"
    if key.startswith("service "):
        return f"{key}: {current} (was {recorded})"
    if key.startswith("container "):
        if current.get("status") != recorded.get("status"):
            return f"{key}: {current.get('status')} (was {recorded.get('status')})"
        if current.get("image") != recorded.get("image"):
            return f"{key}: runs another image"
        return f"{key}: recreated from another compose configuration"
    return f"{key}: changed"


def _unusable(reason: str, roles: List[str]) -> Dict[str, Any]:
    return {"converged": False, "drift": [reason], "run_roles": list(roles), "manifests": {}}


def verify(module: AnsibleModule, path: str, digest: str, roles: List[str], base_roles: List[str]) -> Dict[str, Any]:
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
    measured = measure_roles(module, manifests)
    for role in roles:
        current = measured[role]
        found = [describe(key, recorded[role].get(key), current[key]) for key in sorted(current)
                 if key not in recorded[role] or recorded[role][key] != current[key]]
        drift.extend(found)
        if found:
            drifted_roles.append(role)
    run_roles = list(roles) if set(drifted_roles) & set(base_roles) else drifted_roles
    return {"converged": not drift, "drift": drift, "run_roles": run_roles, "manifests": manifests}


def record(module: AnsibleModule, path: str, digest: str, manifests: Dict[str, Dict[str, List[str]]]) -> None:
    stamp = {"digest": digest, "roles": manifests,
             "state": measure_roles(module, manifests)}
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


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "digest": {"type": "str", "required": True, "no_log": False},
            "mode": {"type": "str", "choices": ["verify", "record"], "default": "verify"},
            "roles": {"type": "raw", "required": True},
            "base_roles": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    path, digest, roles = module.params["path"], module.params["digest"], module.params["roles"]
    if not digest:
        module.fail_json(msg="digest must not be empty")
    if module.params["mode"] == "verify":
        if not isinstance(roles, list) or not all(isinstance(r, str) and r for r in roles):
            module.fail_json(msg="verify needs roles as a list of role names")
        result = verify(module, path, digest, roles, module.params["base_roles"])
        # Facts named fleet_report_* reach deploy.py's run results (runner.py).
        module.exit_json(changed=False, ansible_facts={"fleet_report_converged": result["converged"],
                                                       "fleet_report_drift": result["drift"]}, **result)
    if not isinstance(roles, dict) or not roles:
        module.fail_json(msg="record needs roles as a mapping of role name to manifest")
    try:
        manifests = {str(role): clean_manifest(manifest) for role, manifest in roles.items()}
    except (ValueError, AttributeError) as error:
        module.fail_json(msg=f"manifest of a role: {error}")
    if not module.check_mode:
        record(module, path, digest, manifests)
    # Bookkeeping: the stamp follows every completed run, so writing it is never reported as a change.
    module.exit_json(changed=False, converged=True, drift=[], run_roles=[], manifests={})


if __name__ == "__main__":
    main()
