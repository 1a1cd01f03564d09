"""A compute double runs a job's container on a real Docker engine (skipped when no daemon answers).

The socket is BACALHAU_DOUBLE_DOCKER_SOCKET (default /var/run/docker.sock), the same variable the compute double
reads. Nothing is built or pulled: the test uses localhost/fleet-python:trixie when the engine has it. Locally
built images carry no repository digest, which a real v1.9.3 node would verify with the registry before bidding;
BACALHAU_DOUBLE_TRUST_LOCAL_IMAGES=1 lets the double use the image anyway.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from bacalhau_harness import NATS_SERVER, start_compute, start_orchestrator, wait_status
from jobs_harness import docker_job, local_input, run

SOCKET = os.environ.get("BACALHAU_DOUBLE_DOCKER_SOCKET", "/var/run/docker.sock")
IMAGE = "localhost/fleet-python:trixie"


def _engine(path: str) -> Any:
    """GET path on the engine's socket (None when the daemon does not answer)."""

    class Conn(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(5)
            self.sock.connect(SOCKET)

    conn = Conn("localhost", timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return json.loads(response.read()) if response.status == 200 else None
    except (OSError, ValueError):
        return None
    finally:
        conn.close()


pytestmark = [
    pytest.mark.skipif(not os.path.exists(NATS_SERVER), reason="nats-server is not installed"),
    pytest.mark.skipif(_engine("/info") is None, reason=f"no Docker daemon answers on {SOCKET}"),
]


def test_a_real_container_reads_an_allow_listed_path(tmp_path: Path) -> None:
    image = _engine(f"/images/{urllib.parse.quote(IMAGE, safe='')}/json")
    if image is None:
        pytest.skip(f"{IMAGE} is not on this engine (the test builds and pulls nothing)")
    data = tmp_path / "data"
    data.mkdir()
    (data / "readings.csv").write_text("sensor-1,21.5\n")
    env = {**os.environ, "BACALHAU_DOUBLE_DOCKER_SOCKET": SOCKET}
    if not image.get("RepoDigests"):
        env["BACALHAU_DOUBLE_TRUST_LOCAL_IMAGES"] = "1"
    orch, nats_port = start_orchestrator(tmp_path / "orch")
    compute = start_compute(tmp_path / "a", "node-a", nats_port, labels={"zone": "a"}, env=env,
                            compute={"AllowListedLocalPaths": [f"{data}/**:ro"]})
    try:
        wait_status(orch.api_port, "node-a", "CONNECTED")
        script = ("import sys; print(open('/data/readings.csv').read().strip()); print('warn', file=sys.stderr); "
                  "sys.exit(4)")
        body = docker_job(IMAGE, ["python3", "-c", script], zone="a", inputs=[local_input(str(data))],
                          Network={"Type": "None"})
        response = run(orch.api_port, body, timeout=120)
        assert response["Job"]["State"] == {"StateType": "Completed"}, response
        [execution] = response["Executions"]["Items"]
        assert execution["RunOutput"] == {"Stdout": "sensor-1,21.5\n", "StdoutTruncated": False, "stderr": "warn\n",
                                          "StderrTruncated": False, "ExitCode": 4, "ErrorMsg": ""}
        label = urllib.parse.quote(json.dumps({"label": [f"bacalhau-executionID=node-a{execution['ID']}"]}))
        assert _engine(f"/containers/json?all=1&filters={label}") == []  # removed after the run
    finally:
        compute.stop()
        orch.stop()
