"""The test doubles against a real nats-server, run as plain processes (no Docker); traffic only on 127.0.0.1."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from bacalhau_harness import BACALHAU, NATS_SERVER, TOKEN, free_port, get, start_orchestrator, wait_port, wait_status

HERE = Path(__file__).resolve().parent
SENSOR = [sys.executable, "-m", "sensor_double"]

pytestmark = pytest.mark.skipif(not os.path.exists(NATS_SERVER), reason="nats-server is not installed")


def stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    if proc.poll() is None:
        proc.terminate()
    try:
        return proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()


@pytest.fixture(scope="module")
def nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A real nats-server requiring TOKEN; the token sits in a 0600 config file, not on the command line."""
    port = free_port()
    conf = tmp_path_factory.mktemp("nats") / "nats.conf"
    conf.write_text(f'listen: "127.0.0.1:{port}"\nauthorization {{ token: "{TOKEN}" }}\n')
    conf.chmod(0o600)
    proc = subprocess.Popen([NATS_SERVER, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def compute_config(tmp_path: Path, nats_port: int, token: str, **extra: Any) -> tuple[Path, int]:
    api_port = free_port()
    cfg: dict[str, Any] = {
        "DataDir": str(tmp_path / "data"),
        "API": {"Host": "127.0.0.1", "Port": api_port},
        "Labels": {"team": "edge"},
        "Orchestrator": {"Enabled": False},
        "Compute": {"Enabled": True, "Orchestrators": [f"nats://127.0.0.1:{nats_port}"], "Auth": {"Token": token},
                    "Heartbeat": {"Interval": "15s"}},
    }
    cfg.update(extra)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, api_port


def run_bacalhau(args: list[str], timeout: float = 20, env: dict[str, str] | None = None
                 ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(BACALHAU + args, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "BACALHAU_DOUBLE_CONNECT_DEADLINE": "2", **(env or {})})


def test_version() -> None:
    assert run_bacalhau(["version"]).stdout.strip() == "v1.9.3 (test double)"


def test_compute_joins_with_right_token_and_redacts_it(tmp_path: Path) -> None:
    orch, nats_port = start_orchestrator(tmp_path / "orch")
    config, api_port = compute_config(tmp_path, nats_port, TOKEN)
    proc = subprocess.Popen(BACALHAU + ["serve", "--config", str(config), "--name", "node-a"], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_port(api_port)
        deadline = time.monotonic() + 10
        while get(api_port, "/api/v1/agent/node")[1]["ConnectionState"] != "CONNECTED":
            assert time.monotonic() < deadline and proc.poll() is None, "compute node never connected"
            time.sleep(0.1)
        assert get(api_port, "/api/v1/agent/alive") == (200, {"Status": "OK"})
        status, answer = get(api_port, "/api/v1/agent/config")
        assert status == 200 and list(answer) == ["config"]
        effective = answer["config"]
        assert effective["Compute"]["Auth"]["Token"] == "********"  # the real node's mask
        assert effective["Compute"]["Enabled"] is True
        assert TOKEN not in json.dumps(effective)
        node = get(api_port, "/api/v1/agent/node")[1]
        assert node["NodeID"] == "node-a" and node["NodeType"] == "Compute"
        assert node["Labels"] == {"name": "node-a", "os_arch": node["Labels"]["os_arch"], "os_type": "linux",
                                  "team": "edge"}
        alive = run_bacalhau(["agent", "alive", "--api-host", "127.0.0.1", "--api-port", str(api_port)])
        assert alive.returncode == 0, alive.stderr
        assert proc.poll() is None
    finally:
        out, err = stop(proc)
        orch_log = orch.stop()
    assert TOKEN not in out + err + orch_log
    assert "connected to orchestrator" in err and "handshake successful with node node-a" in orch_log


def test_agent_alive_fails_without_a_node() -> None:
    assert run_bacalhau(["agent", "alive", "--api-port", str(free_port())]).returncode == 1


def test_wrong_token_is_rejected(tmp_path: Path, nats: int) -> None:
    config, _ = compute_config(tmp_path, nats, "not-the-token")
    result = run_bacalhau(["serve", "--config", str(config)])
    assert result.returncode == 1
    assert "authentication failed" in result.stderr
    assert "not-the-token" not in result.stdout + result.stderr


def test_unreachable_orchestrator_gives_up(tmp_path: Path) -> None:
    config, _ = compute_config(tmp_path, free_port(), TOKEN)
    started = time.monotonic()
    result = run_bacalhau(["serve", "--config", str(config)])
    assert result.returncode == 1
    assert 1.5 < time.monotonic() - started < 15
    assert "no orchestrator answered" in result.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"Node": {"Type": "compute"}}, "unknown top-level config key 'Node'"),
        ({"Compute": {"Enabled": True, "Orchestrator": "x"}}, "unknown config key Compute.Orchestrator"),
        ({"Compute": {"Enabled": True, "Orchestrators": ["h"], "Heartbeat": {"Interval": 15}}}, "Go duration"),
        ({"Compute": {"Enabled": True, "Orchestrators": ["tls://h:4222"]}}, "tls:// is not supported"),
        ({"Compute": {"Enabled": "yes", "Orchestrators": ["h"]}}, "Compute.Enabled must be a boolean"),
        ({"API": {"Host": "127.0.0.1", "Port": "12x"}}, "API.Port must be a port number"),
        ({"Compute": {"Enabled": True, "Orchestrators": ["h"], "AllocatedCapacity": {"CPU": "lots"}}},
         "Compute.AllocatedCapacity.CPU is not a valid amount"),
        ({"Compute": {"Enabled": True, "Orchestrators": ["h"], "Heartbeat": {"Interval": "0s"}}},
         "Compute.Heartbeat.Interval must be positive"),
    ],
)
def test_bad_config_is_rejected(tmp_path: Path, nats: int, extra: dict[str, Any], message: str) -> None:
    config, _ = compute_config(tmp_path, nats, TOKEN, **extra)
    result = run_bacalhau(["serve", "--config", str(config)])
    assert result.returncode == 1
    assert message in result.stderr


def test_weakly_typed_values_are_accepted_like_viper(tmp_path: Path, nats: int) -> None:
    """Quoted ports and "false" strings (e.g. from templating) work on the real node: the double must agree."""
    config, api_port = compute_config(tmp_path, nats, TOKEN)
    cfg = yaml.safe_load(config.read_text())
    cfg["API"]["Port"] = str(api_port)
    cfg["Orchestrator"]["Enabled"] = "false"
    config.write_text(yaml.safe_dump(cfg))
    proc = subprocess.Popen(BACALHAU + ["serve", "--config", str(config)], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_port(api_port)
        effective = get(api_port, "/api/v1/agent/config")[1]["config"]
        assert effective["API"]["Port"] == api_port and effective["Orchestrator"]["Enabled"] is False
    finally:
        stop(proc)


def test_neither_mode_enabled_is_rejected(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"DataDir": str(tmp_path / "d"), "Compute": {"Orchestrators": ["h:4222"]}}))
    result = run_bacalhau(["serve", "--config", str(config)])
    assert result.returncode == 1
    assert "would quietly start an ORCHESTRATOR" in result.stderr


def test_orchestrator_mode_runs_nats_with_token_and_lists_nodes(tmp_path: Path) -> None:
    nats_port, api_port = free_port(), free_port()
    orch_cfg = tmp_path / "orch.yaml"
    orch_cfg.write_text(yaml.safe_dump({
        "DataDir": str(tmp_path / "orch"), "API": {"Host": "127.0.0.1", "Port": api_port},
        "Orchestrator": {"Enabled": True, "Host": "127.0.0.1", "Port": nats_port, "Auth": {"Token": TOKEN}},
    }))
    orch = subprocess.Popen(BACALHAU + ["serve", "--config", str(orch_cfg), "--name", "orch"], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    compute = None
    orch_logs: tuple[str, str] | None = None
    try:
        wait_port(api_port)
        nats_argv = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        assert TOKEN not in nats_argv, "the token must never be on a command line"
        comp_dir = tmp_path / "c"
        comp_dir.mkdir()
        config, _ = compute_config(comp_dir, nats_port, TOKEN)
        compute = subprocess.Popen(BACALHAU + ["serve", "--config", str(config), "--name", "node-b"], text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # The orchestrator lists itself (a "Requester") and, once it handshook, the compute node.
        node = wait_status(api_port, "node-b", "CONNECTED")
        assert node["Connection"] == "CONNECTED" and node["Info"]["NodeType"] == "Compute"
        assert get(api_port, "/api/v1/agent/config")[1]["config"]["Orchestrator"]["Auth"]["Token"] == "********"
        # The compute node must notice when its orchestrator goes away (compose then restarts it).
        orch_logs = stop(orch)
        assert compute.wait(timeout=10) == 1
    finally:
        if orch_logs is None:
            orch_logs = stop(orch)
        if compute is not None:
            c_out, c_err = stop(compute)
            assert "lost connection to orchestrator" in c_err
            assert TOKEN not in c_out + c_err
    assert TOKEN not in orch_logs[0] + orch_logs[1]


# ---- sensor double ----

IDENTITY: dict[str, Any] = {
    "sensor_id": "SENSOR_DE_BER_0001",
    "location": {"city": "Berlin", "state": "BE", "timezone": "Europe/Berlin",
                 "coordinates": {"latitude": 52.52, "longitude": 13.405}},
    "device_info": {"manufacturer": "Acme", "model": "TH-1", "firmware_version": "2.1.0",
                    "serial_number": "A1", "manufacture_date": "2024-03-01"},
    "deployment": {"deployment_type": "rooftop", "installation_date": "2024-05-01T00:00:00Z",
                   "height_meters": 12.5, "orientation_degrees": 270},
    "metadata": {"instance_id": "i-0abc", "identity_generation_timestamp": "2024-05-01T00:00:00+00:00",
                 "generation_seed": 1234, "sensor_type": "environmental"},
}


def sensor_env(tmp_path: Path, identity: dict[str, Any], run_time: float = 30) -> tuple[dict[str, str], int]:
    port = free_port()
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({
        "database": {"path": "data/sensor_data.db"}, "logging": {"level": "INFO"},
        "simulation": {"run_time_seconds": run_time, "readings_per_second": 10},
        "monitoring": {"host": "127.0.0.1", "port": port},
    }))
    (tmp_path / "identity.json").write_text(json.dumps(identity))
    env = {**os.environ, "PYTHONPATH": str(HERE / "sensor"), "CONFIG_FILE": str(tmp_path / "config.yaml"),
           "IDENTITY_FILE": str(tmp_path / "identity.json")}
    return env, port


def test_sensor_writes_rows_and_serves_monitor(tmp_path: Path) -> None:
    env, port = sensor_env(tmp_path, IDENTITY)
    db = tmp_path / "data" / "sensor_data.db"
    db.parent.mkdir()
    db.write_text("stale")  # deleted at start (PRESERVE_EXISTING_DB unset)
    proc = subprocess.Popen(SENSOR, cwd=tmp_path, env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        wait_port(port)
        time.sleep(0.5)
        first = get(port, "/db_stats")[1]["total_readings"]
        time.sleep(0.6)
        second = get(port, "/db_stats")[1]["total_readings"]
        assert 0 < first < second, "readings must keep growing"
        assert get(port, "/healthz") == (503, {"status": "unhealthy", "database_healthy": False})
        status, body = get(port, "/statusz")
        assert status == 200 and body["sensor_id"] == "SENSOR_DE_BER_0001"
        assert get(port, "/samplez")[1]["samples"][0]["sensor_id"] == "SENSOR_DE_BER_0001"
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("SELECT COUNT(*) FROM sensor_readings").fetchone()[0] >= second
    finally:
        stop(proc)


def test_sensor_exits_0_after_run_time(tmp_path: Path) -> None:
    env, _ = sensor_env(tmp_path, IDENTITY, run_time=1)
    result = subprocess.run(SENSOR, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=15)
    assert result.returncode == 0
    assert "simulation complete" in result.stderr
    with sqlite3.connect(tmp_path / "data" / "sensor_data.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM sensor_readings").fetchone()[0] >= 5


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("device_info", "firmware_version"), "v1", "not SemVer"),
        (("device_info", "firmware_version"), 2.1, "must be a string"),
        (("location", "coordinates", "latitude"), 91, "between -90 and 90"),
        (("location", "timezone"), "Mars/Olympus", "IANA"),
        (("deployment", "installation_date"), "yesterday", "ISO 8601"),
        (("sensor_id",), None, "sensor_id is required"),
    ],
)
def test_sensor_bad_identity_logs_and_exits_0(tmp_path: Path, path: tuple[str, ...], value: Any,
                                              message: str) -> None:
    identity = json.loads(json.dumps(IDENTITY))
    node = identity
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    env, _ = sensor_env(tmp_path, identity)
    result = subprocess.run(SENSOR, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=15)
    assert result.returncode == 0, "upstream quirk: fatal errors still exit 0"
    assert "ERROR - fatal:" in result.stderr and message in result.stderr
    assert not (tmp_path / "data" / "sensor_data.db").exists()


def test_sensor_lower_case_log_level_is_fatal(tmp_path: Path) -> None:
    env, _ = sensor_env(tmp_path, IDENTITY)
    cfg = yaml.safe_load((tmp_path / "config.yaml").read_text())
    cfg["logging"]["level"] = "info"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    result = subprocess.run(SENSOR, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=15)
    assert result.returncode == 0
    assert "logging.level 'info'" in result.stderr
