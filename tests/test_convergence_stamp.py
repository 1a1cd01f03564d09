"""The convergence stamp (playbooks/library/fleet_convergence.py, its action plugin and module_utils/fleet_state.py),
run by real Ansible on this machine. verify runs both ways: the action plugin's fast path (fleet_state.py sent to
python3 on stdin) and the module (no interpreter configured), and both must give the same answers.

What it measures on a node is covered by the E2E drift matrix; here: the record/verify contract on files, absent
paths, directories and a real dpkg package, partial re-runs, and that bad manifests fail loudly. Also a static
guard: every file a role's tasks write is in that role's manifest (vars/main.yml, __<role>_managed).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
ROLES = ("docker", "aws_credentials", "bacalhau", "sensor", "health_check")


def _run(args: dict[str, Any], check_mode: bool = False, fast: bool = True) -> dict[str, Any]:
    """One ad-hoc run on localhost (real Ansible, local connection), its result from the json callback. With
    fast=False pipelining is off (as for a connection without it), so the action plugin hands verify to the module."""
    playbooks = REPO / "playbooks"
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
               ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_NOCOLOR="1",
               ANSIBLE_ACTION_PLUGINS=str(playbooks / "action_plugins"),
               ANSIBLE_MODULE_UTILS=str(playbooks / "module_utils"),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    argv = ["ansible", "localhost", "-c", "local", "-i", "localhost,", "-M", str(playbooks / "library"),
            "-m", "fleet_convergence", "-a", json.dumps(args), "-e", f"ansible_python_interpreter={sys.executable}"]
    # The fast path needs what a pipelined module needs (ansible.cfg turns pipelining on for ssh only).
    env["ANSIBLE_PIPELINING"] = "1" if fast else "0"
    if check_mode:
        argv.append("--check")
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, cwd=REPO)
    data = json.loads(proc.stdout)
    result: dict[str, Any] = data["plays"][0]["tasks"][0]["hosts"]["localhost"]
    # Only a module run reports its invocation: proof of which way verify went.
    if not result.get("failed"):
        assert ("invocation" in result) == (not fast or args.get("mode") == "record"), result
    return result


@pytest.fixture(params=[True, False], ids=["fast path", "module"])
def node(tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, Any]:
    files = tmp_path / "etc"
    files.mkdir(mode=0o700)
    (files / "a.conf").write_text("a\n")
    (files / "b.conf").write_text("b\n")
    return {
        "stamp": str(tmp_path / "state" / "converged.json"),
        "dir": files,
        "roles": {
            "base": {"files": [str(files / "a.conf")], "packages": ["python3"]},
            "app": {"files": [str(files / "b.conf")], "directories": [str(files)],
                    "absent": [str(tmp_path / "gone.conf")]},
        },
        "gone": tmp_path / "gone.conf",
        "fast": request.param,
    }


def _record(node: dict[str, Any], digest: str = "d1") -> dict[str, Any]:
    return _run({"path": node["stamp"], "digest": digest, "mode": "record", "roles": node["roles"]})


def _verify(node: dict[str, Any], digest: str = "d1") -> dict[str, Any]:
    return _run({"path": node["stamp"], "digest": digest, "roles": ["base", "app"], "base_roles": ["base"]},
                fast=node["fast"])


def test_an_unchanged_node_is_converged_and_runs_nothing(node: dict[str, Any]) -> None:
    assert _verify(node)["run_roles"] == ["base", "app"]  # no stamp yet: every role
    recorded = _record(node)
    assert recorded["changed"] is False and not recorded.get("failed"), recorded
    assert os.stat(node["stamp"]).st_mode & 0o777 == 0o600
    result = _verify(node)
    assert (result["converged"], result["drift"], result["run_roles"]) == (True, [], []), result
    assert result["ansible_facts"] == {"fleet_report_converged": True, "fleet_report_drift": []}
    assert result["manifests"]["app"]["absent"] == [str(node["gone"])]


def test_each_kind_of_drift_is_named_and_only_its_role_runs(node: dict[str, Any]) -> None:
    _record(node)
    (node["dir"] / "b.conf").write_text("edited\n")
    node["dir"].chmod(0o755)
    node["gone"].write_text("back\n")
    result = _verify(node)
    assert result["converged"] is False and result["run_roles"] == ["app"], result
    assert result["drift"] == [f"{node['gone']}: present (the roles remove it)",
                               f"directory {node['dir']}: mode changed",
                               f"file {node['dir'] / 'b.conf'}: content changed"], result["drift"]


def test_a_managed_block_is_the_roles_and_the_rest_of_its_file_is_not(node: dict[str, Any]) -> None:
    """authorized_keys: the ssh_access role owns its marked block, the file's mode and owner; the launch key and a
    person's own line around it are not the role's, so they are not drift (the role would change nothing)."""
    keys = node["dir"] / "authorized_keys"
    block = "# BEGIN fleetdeploy: keys\nssh-ed25519 AAAA alice\n# END fleetdeploy: keys\n"
    keys.write_text("ssh-ed25519 LAUNCH launch\n" + block)
    keys.chmod(0o600)
    node["roles"]["access"] = {"blocks": [str(keys)]}
    recorded = _record(node)
    assert not recorded.get("failed"), recorded

    def verify() -> dict[str, Any]:
        return _run({"path": node["stamp"], "digest": "d1", "roles": ["base", "app", "access"],
                     "base_roles": ["base"]}, fast=node["fast"])

    keys.write_text("ssh-ed25519 LAUNCH launch\n" + block + "ssh-rsa AAAB someone's own\n")
    assert verify()["converged"] is True
    keys.write_text("ssh-ed25519 LAUNCH launch\n" + block.replace("alice", "mallory"))
    assert verify()["drift"] == [f"block {keys}: content changed"]
    keys.write_text("ssh-ed25519 LAUNCH launch\n")
    assert verify()["drift"] == [f"block {keys}: content changed"]
    keys.write_text("ssh-ed25519 LAUNCH launch\n" + block)
    keys.chmod(0o666)  # sshd's StrictModes refuses such a file: logins with every key in it fail
    result = verify()
    assert result["drift"] == [f"block {keys}: mode changed"] and result["run_roles"] == ["access"], result
    keys.unlink()
    assert verify()["drift"] == [f"block {keys}: missing"]


def test_drift_in_a_base_role_runs_every_role(node: dict[str, Any]) -> None:
    _record(node)
    (node["dir"] / "a.conf").unlink()
    result = _verify(node)
    assert result["drift"] == [f"file {node['dir'] / 'a.conf'}: missing"]
    assert result["run_roles"] == ["base", "app"]


def test_other_roles_or_inputs_and_a_broken_stamp_run_everything(node: dict[str, Any]) -> None:
    _record(node)
    assert _verify(node, digest="d2")["drift"] == ["roles or inputs changed since the last run"]
    Path(node["stamp"]).write_text("{not json")
    result = _verify(node)
    assert result["drift"] == ["unreadable convergence stamp"] and result["run_roles"] == ["base", "app"]


def test_check_mode_writes_no_stamp(node: dict[str, Any]) -> None:
    _run({"path": node["stamp"], "digest": "d1", "mode": "record", "roles": node["roles"]}, check_mode=True)
    assert not Path(node["stamp"]).exists()


def test_a_manifest_holding_something_else_than_paths_fails(node: dict[str, Any]) -> None:
    # What a role reporting a registered result (a dict) instead of a path would hand over.
    bad = {"base": {"files": [{"path": "/etc/x", "changed": False}]}}
    result = _run({"path": node["stamp"], "digest": "d1", "mode": "record", "roles": bad})
    assert result.get("failed") and "is not an absolute path" in result["msg"], result
    typo = _run({"path": node["stamp"], "digest": "d1", "mode": "record", "roles": {"base": {"file": ["/x"]}}})
    assert typo.get("failed") and "unknown manifest key 'file'" in typo["msg"], typo
    assert not Path(node["stamp"]).exists()


def test_verify_with_roles_not_a_list_fails_the_same_way_on_both_paths(node: dict[str, Any]) -> None:
    result = _run({"path": node["stamp"], "digest": "d1", "roles": "base"}, fast=node["fast"])
    assert result.get("failed") and "verify needs roles as a list of role names" in result["msg"], result


def _written_paths(role: str) -> set[str]:
    """The `dest`/`cron_file` expressions of the role's tasks that write files on the node."""
    writes = ("ansible.builtin.template", "ansible.builtin.copy", "ansible.builtin.cron")
    found: set[str] = set()
    for tasks_file in sorted((REPO / "roles" / role / "tasks").glob("*.yml")):
        for task in yaml.safe_load(tasks_file.read_text()) or []:
            for module in writes:
                if module in task:
                    args = task[module]
                    found.add(str(args.get("dest") or args.get("cron_file")))
    return found


@pytest.mark.parametrize("role", ROLES)
def test_every_file_a_role_writes_is_in_its_manifest(role: str) -> None:
    manifest_text = yaml.safe_load((REPO / "roles" / role / "vars" / "main.yml").read_text())[f"__{role}_managed"]
    declared = json.dumps(manifest_text) + json.dumps(
        yaml.safe_load((REPO / "roles" / role / "vars" / "main.yml").read_text()).get(f"__{role}_repo_files", []))
    for expression in _written_paths(role):
        names = re.findall(r"__\w+|/[\w./-]+", expression)
        if role == "health_check" and expression == "{{ __health_check_cron_file }}":
            names = ["__health_check_cron_path"]  # the cron module's cron_file is a name under /etc/cron.d
        assert names and all(name in declared for name in names), (role, expression, declared)
    # And each role reports it: the last task sets <role>_managed from the declaration.
    main = yaml.safe_load((REPO / "roles" / role / "tasks" / "main.yml").read_text())
    assert main[-1]["ansible.builtin.set_fact"] == {f"{role}_managed": f"{{{{ __{role}_managed }}}}"}


def test_a_retagged_image_is_drift_though_the_container_did_not_change(tmp_path: Path) -> None:
    """The container still runs the image ID it was created from; its image name now means another image."""
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        pytest.fail("a Docker engine is needed (scripts/setup.sh starts one)")
    import uuid

    tag = f"localhost/stamp-retag:{uuid.uuid4().hex[:8]}"
    name = f"stamp-retag-{uuid.uuid4().hex[:8]}"
    subprocess.run(["docker", "tag", "localhost/fleet-node-base:trixie", tag], check=True, capture_output=True)
    try:
        subprocess.run(["docker", "create", "--name", name, tag, "true"], check=True, capture_output=True)
        node = {"stamp": str(tmp_path / "converged.json"), "roles": {"app": {"containers": [name]}}}
        _run({"path": node["stamp"], "digest": "d1", "mode": "record", "roles": node["roles"]})
        args = {"path": node["stamp"], "digest": "d1", "roles": ["app"], "base_roles": []}
        assert _run(args)["converged"] is True
        subprocess.run(["docker", "tag", "localhost/fleet-node:trixie", tag], check=True, capture_output=True)
        for fast in (True, False):
            result = _run(args, fast=fast)
            assert result["converged"] is False, result
            assert result["drift"] == [f"container {name}: its image name now points at another image (retagged)"]
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
        subprocess.run(["docker", "rmi", tag], capture_output=True)


def _fake_program(bin_dir: Path, name: str, script: str) -> None:
    program = bin_dir / name
    program.write_text("#!/bin/sh\n" + script)
    program.chmod(0o755)


@pytest.mark.parametrize("engine", ["inactive", "failed", "active", "unknown"])
def test_a_stopped_engine_is_never_asked_about_containers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          engine: str) -> None:
    """With docker.socket active, any docker call starts a stopped engine again: measuring must not make one.
    systemctl and docker are stand-ins on PATH that say what a node's would and log that they were called."""
    sys.path.insert(0, str(REPO / "playbooks" / "module_utils"))
    try:
        import fleet_state
    finally:
        sys.path.pop(0)
    bin_dir, calls = tmp_path / "bin", tmp_path / "docker-calls"
    bin_dir.mkdir()
    if engine == "unknown":  # a machine without systemd: systemctl fails, and docker is asked as before
        _fake_program(bin_dir, "systemctl", "echo 'System has not been booted with systemd' >&2; exit 1\n")
    else:
        _fake_program(bin_dir, "systemctl", f"printf 'Id=docker.service\\nActiveState={engine}\\n"
                                            "UnitFileState=enabled\\n'\n")
    _fake_program(bin_dir, "docker", f"echo \"$*\" >> {calls}; echo '[]'\n")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    manifest = fleet_state.clean_manifest({"services": ["docker"], "containers": ["bacalhau", "sensor"]})
    state = fleet_state.measure(manifest)

    if engine in ("inactive", "failed"):
        assert not calls.exists()
        assert state["container bacalhau"] == state["container sensor"] == {"status": "engine stopped"}
        assert fleet_state.describe("service docker", "active/enabled", state["service docker"]) == (
            f"service docker: stopped, {engine}/enabled (was active/enabled)")
    else:
        assert calls.read_text().startswith("inspect --type container")
        assert state["container bacalhau"] == {"status": "absent"}
