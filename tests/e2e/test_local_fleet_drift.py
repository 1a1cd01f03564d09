"""The drift matrix, on the shared local fleet (after test_local_fleet.py, before test_local_fleet_ops.py).

The fast path (a converged node ends after one task) is only honest if it misses no drift. Each case changes one
thing the roles manage on one node: every file they write (content, mode, or removed), each service container
stopped, removed or running another image, a removed package. `configure --check` must then name exactly that
node, with exactly that thing, and `configure` must fix it. Cases on different nodes are independent (each node is
checked against its own stamp), so each round drifts one thing on each of up to three nodes at once. Also the
drift compose alone cannot undo: a paused container, a container of the service's name that compose does not own,
an image name retagged to another image.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from local_fleet import STAMP, Fleet, by_key, docker_out

pytestmark = pytest.mark.e2e

# Every file the roles write on this fleet's nodes (AWS credentials on; the local provider sets a daemon
# environment, so the docker drop-in exists). The stamp's manifest must list exactly these.
AUTHORIZED_KEYS = "/home/ubuntu/.ssh/authorized_keys"  # ssh_access's block in it (the rest is the provider's)
ROLE_FILES = {
    "/etc/systemd/system/docker.service.d/environment.conf",
    "/etc/fleet/aws/credentials",
    "/etc/fleet/aws/config",
    "/etc/bacalhau/config.yaml",
    "/opt/bacalhau/compose.yaml",
    "/opt/sensor/config/node-identity.json",
    "/opt/sensor/config/sensor-config.yaml",
    "/opt/sensor/compose.yaml",
    "/usr/local/bin/fleet-health-check",
    "/etc/fleet-health/settings.json",
    "/etc/logrotate.d/fleet-health",
    "/etc/cron.d/fleet-health-check",
}
# Another image each service could be switched to by hand, kept running by `sleep` (both images have it).
OTHER_IMAGE = {"bacalhau": "localhost/sensor-double:test", "sensor": "localhost/bacalhau-double:test"}
COMPOSE_DIR = {"bacalhau": "/opt/bacalhau", "sensor": "/opt/sensor"}


@dataclass(frozen=True)
class Case:
    name: str
    script: str  # run as root in the node container
    expected: frozenset[str]  # the drift items the check must report ("kind name", before the colon)
    also: frozenset[str] = frozenset()  # what the same change may knock over too (e.g. a removed package's service)
    after_check: str = ""  # a command that must still succeed on the node after `--check` (the check changed nothing)


def _file_case(path: str) -> Case:
    if path in ("/etc/fleet/aws/credentials", "/etc/bacalhau/config.yaml"):
        script, how = f"chmod 0644 {path}", "made world-readable"  # secrets: the mode is what matters
    elif path == "/etc/cron.d/fleet-health-check":
        script, how = f"rm -f {path}", "removed"
    else:
        script, how = f"printf '# drift\\n' >> {path}", "edited"
    return Case(f"{path} {how}", script, frozenset({f"file {path}"}))


def _container_cases(service: str) -> list[Case]:
    override = (f"services:\\n  {service}:\\n    image: {OTHER_IMAGE[service]}\\n"
                f"    entrypoint: [sleep, infinity]\\n    healthcheck: {{disable: true}}\\n")
    switch = (f"printf '{override}' > /tmp/drift-override.yaml && docker compose -p {service} "
              f"-f {COMPOSE_DIR[service]}/compose.yaml -f /tmp/drift-override.yaml up -d --no-build --pull never "
              f">/dev/null 2>&1 && rm /tmp/drift-override.yaml")
    expected = frozenset({f"container {service}"})
    image = {"bacalhau": "localhost/bacalhau-double:test", "sensor": "localhost/sensor-double:test"}[service]
    # Someone's own container under the service's name: compose does not own it, so it blocked every run.
    foreign = (f"docker rm -f {service} >/dev/null && docker run -d --name {service} --entrypoint sleep {image} "
               "infinity >/dev/null")
    cases = [Case(f"{service} container stopped", f"docker stop {service} >/dev/null", expected),
             Case(f"{service} container removed", f"docker rm -f {service} >/dev/null", expected),
             Case(f"{service} container runs another image", switch, expected),
             Case(f"{service} container paused", f"docker pause {service} >/dev/null", expected),
             Case(f"{service} name taken by a container compose does not own", foreign, expected)]
    if service == "sensor":
        # The image name now means another image (same content, a label more); the container still runs the old.
        retag = (f"printf 'FROM {image}\\nLABEL drift=retagged\\n' | docker build -q -t {image} - >/dev/null 2>&1")
        cases.append(Case("sensor image retagged", retag, expected))
    return cases


def _together(first: Case, second: Case) -> Case:
    """Two drifts on one node, each named: keeps the matrix at whole rounds of three nodes."""
    return Case(f"{first.name} + {second.name}", f"{first.script} && {second.script}", first.expected | second.expected)


def _cases() -> list[Case]:
    files = {path: _file_case(path) for path in sorted(ROLE_FILES)}
    paired = ("/etc/fleet-health/settings.json", "/etc/logrotate.d/fleet-health")  # one role's two files
    cases = [case for path, case in files.items() if path not in paired]
    cases.append(_together(files[paired[0]], files[paired[1]]))
    cases += _container_cases("bacalhau") + _container_cases("sensor")
    # Inside the role's block (a line outside it is not the role's: test_local_fleet_ops.py, test 5h).
    cases.append(Case("an operator's key edited in authorized_keys",
                      f"sed -i 's/operator@e2e$/operator@someone-else/' {AUTHORIZED_KEYS}",
                      frozenset({f"block {AUTHORIZED_KEYS}"})))
    # apt keeps the downloaded .deb: reinstalling needs the package lists only.
    cases.append(Case("cron package removed", "DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq cron >/dev/null",
                      frozenset({"package cron"}), also=frozenset({"service cron"})))
    # docker.socket stays active: any docker call, even a read, would start the engine again. The check must report
    # the drift (not fail the node) and leave the engine stopped.
    cases.append(Case("docker engine stopped", "systemctl stop docker.service 2>/dev/null",
                      frozenset({"service docker", "container bacalhau", "container sensor"}),
                      after_check="! systemctl is-active -q docker.service"))
    return cases


def _drift_keys(items: list[str]) -> set[str]:
    return {item.split(":", 1)[0] for item in items}


def test_stamp_manifest_lists_every_file_the_roles_write(fleet: Fleet) -> None:
    for container in fleet.containers().values():
        stamp = json.loads(docker_out("exec", container, "cat", STAMP))
        manifests = stamp["roles"]
        assert sorted(manifests) == ["aws_credentials", "bacalhau", "docker", "health_check", "sensor", "ssh_access"]
        files = [path for manifest in manifests.values() for path in manifest["files"]]
        assert sorted(files) == sorted(ROLE_FILES), files  # each file once, owned by one role
        assert (manifests["bacalhau"]["containers"], manifests["sensor"]["containers"]) == (["bacalhau"], ["sensor"])
        assert manifests["ssh_access"]["blocks"] == [AUTHORIZED_KEYS]
        assert "cron" in manifests["health_check"]["packages"] and manifests["docker"]["services"] == ["docker"]
        mode = docker_out("exec", container, "stat", "-c", "%a %U", STAMP).split()
        assert mode == ["600", "root"], mode  # checksums of secret files: root only


def test_each_managed_thing_drifted_alone_is_named_on_its_node_then_fixed(fleet: Fleet) -> None:
    nodes = sorted(fleet.containers().items())
    cases = _cases()
    width = len(nodes)
    for start in range(0, len(cases), width):
        batch = cases[start:start + width]
        # Rotate which node gets which case, so every node sees files, containers and packages drift.
        offset = (start // width) % width
        drifted = {fleet.host(nodes[(offset + i) % width][0]): (nodes[(offset + i) % width][1], case)
                   for i, case in enumerate(batch)}
        for _, (container, case) in drifted.items():
            docker_out("exec", container, "sh", "-c", case.script)

        _, check = fleet.json("configure", "--check", expect=3)
        labels = {host: case.name for host, (_, case) in drifted.items()}
        assert check["drifted"] == sorted(drifted), (labels, check["drifted"])
        rows = by_key(check["nodes"], "node")
        for host, row in rows.items():
            if host not in drifted:
                assert row["state"] == "converged" and row["drift"] == [], (labels, row)
                continue
            case = drifted[host][1]
            found = _drift_keys(row["drift"])
            assert case.expected <= found <= case.expected | case.also, (case.name, row["drift"])
            assert row["state"] == "changed", (case.name, row)  # drift, never a failed node
            if case.after_check:
                docker_out("exec", drifted[host][0], "sh", "-c", case.after_check)

        _, fixed = fleet.json("configure")
        rows = by_key(fixed["nodes"], "node")
        assert {h for h, r in rows.items() if r["state"] != "converged"} == set(drifted), (labels, rows)
        assert all(rows[h]["state"] in ("changed", "ok") for h in drifted), (labels, rows)

    _, clean = fleet.json("configure", "--check", expect=0)
    assert clean["drifted"] == [] and all(n["state"] == "converged" for n in clean["nodes"]), clean["nodes"]
    _, health = fleet.json("health")
    assert all(n["health"] == "healthy" for n in health["nodes"]), health["nodes"]
