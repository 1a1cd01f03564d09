#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Ansible module: a node's convergence stamp, and the check that nothing it records has drifted.

The measuring lives in module_utils/fleet_state.py; the action plugin of the same name runs verify through it
without this module where it can (see there).
"""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.fleet_state import clean_manifest, record, verify

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
  - Costs a C(systemctl show) and a C(docker inspect) (and, through the action plugin, a python3 start-up
    instead of a module run): an unchanged node ends there. A node whose
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
        role this run skipped). Keys C(files), C(blocks) (files of which only the C(# BEGIN fleetdeploy) block,
        type, mode and owner are the role's), C(absent), C(directories), C(packages), C(services),
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
        result = verify(path, digest, roles, module.params["base_roles"])
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
        record(path, digest, manifests)
    # Bookkeeping: the stamp follows every completed run, so writing it is never reported as a change.
    module.exit_json(changed=False, converged=True, drift=[], run_roles=[], manifests={})


if __name__ == "__main__":
    main()
