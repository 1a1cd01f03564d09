"""The controller's view of the orchestrator, read from the orchestrator double's real API (tests/doubles).

The double is the allowed stand-in for a remote Bacalhau orchestrator: real nats-server, real compute processes
that authenticate and heartbeat, Bacalhau's JSON shapes (tests/doubles/README.md). What is checked here is our
side: parsing real answers, the API key, the readiness rule, and up's bounded wait.
"""

from __future__ import annotations

import io
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent / "doubles"))  # the doubles' own process harness
from bacalhau_harness import Node, start_compute, start_orchestrator, wait_for  # noqa: E402

from fleetdeploy.orchestrator.api import OrchestratorApi, OrchestratorApiError  # noqa: E402
from fleetdeploy.orchestrator.join import wait_for_join  # noqa: E402
from fleetdeploy.output.progress import ProgressBoard  # noqa: E402

API_KEY = "fleetdeploy-view-key-" + "7" * 12  # Bacalhau wants API keys of 20+ characters


@pytest.fixture()
def world(tmp_path: Path) -> Iterator[tuple[Node, int, Path]]:
    key_file = tmp_path / "api.key"
    key_file.write_text(API_KEY + "\n")
    key_file.chmod(0o600)
    auth = {"Users": [{"Alias": "fleetdeploy", "APIKey": API_KEY, "Capabilities": [{"Actions": ["read:node"]}]}]}
    orchestrator, nats_port = start_orchestrator(tmp_path / "orch", node_manager={"DisconnectTimeout": "3s"},
                                                 api_auth=auth)
    yield orchestrator, nats_port, key_file
    orchestrator.stop()


def board() -> ProgressBoard:
    return ProgressBoard(Console(file=io.StringIO(), width=200), "join")


def test_views_of_joined_missing_and_dead_nodes(world: tuple[Node, int, Path], tmp_path: Path) -> None:
    orchestrator, nats_port, key_file = world
    url = f"http://127.0.0.1:{orchestrator.api_port}"
    api = OrchestratorApi(url, key_file, timeout_s=5)
    live = start_compute(tmp_path / "live", "fleet-lc-live", nats_port, interval="1s")
    doomed = start_compute(tmp_path / "doomed", "fleet-lc-doomed", nats_port, interval="1s")
    try:
        wait_for(lambda: len(api.nodes()) == 2, 15, "both compute nodes listed")
        listed = api.nodes()
        assert sorted(listed) == ["fleet-lc-doomed", "fleet-lc-live"]  # the orchestrator's own entry is skipped
        answer = api.read()
        assert answer.error == ""
        seen = {name: answer.view(name) for name in ("fleet-lc-live", "fleet-lc-never")}
        assert seen["fleet-lc-live"] and seen["fleet-lc-never"]
        assert seen["fleet-lc-live"].ready and seen["fleet-lc-live"].approval == "APPROVED"
        assert seen["fleet-lc-live"].last_heartbeat and seen["fleet-lc-live"].connected_since
        assert not seen["fleet-lc-never"].ready and seen["fleet-lc-never"].connection == "not listed"

        with board() as progress:
            joined = wait_for_join(api, ["fleet-lc-live", "fleet-lc-doomed"], timeout_s=20, board=progress)
        assert joined.ok and not joined.note

        doomed.proc.send_signal(signal.SIGKILL)  # no goodbye: only missing heartbeats tell
        doomed.proc.wait()
        wait_for(lambda: api.nodes()["fleet-lc-doomed"].connection == "DISCONNECTED", 15, "the dead node dropped")
        with board() as progress:
            joined = wait_for_join(api, ["fleet-lc-live", "fleet-lc-doomed"], timeout_s=2, board=progress)
        assert not joined.ok and joined.note == "not every node joined within 2 s"
        dead = {n.node: n.orchestrator for n in joined.nodes}["fleet-lc-doomed"]
        assert dead is not None and dead.connection == "DISCONNECTED"
        assert dead.reason.startswith("DISCONNECTED per the orchestrator (heartbeat timeout), last heartbeat ")
    finally:
        live.stop()
        doomed.stop()


def test_the_api_key_is_required_and_never_shown(world: tuple[Node, int, Path], tmp_path: Path) -> None:
    orchestrator, _, key_file = world
    url = f"http://127.0.0.1:{orchestrator.api_port}"
    with pytest.raises(OrchestratorApiError) as anonymous:
        OrchestratorApi(url).nodes()
    assert str(anonymous.value) == (f"orchestrator API {url} answered 401 Request Unauthorized "
                                    "(check orchestrator.api_token_file)")
    wrong = tmp_path / "wrong.key"
    wrong.write_text("not-the-key-" + "x" * 20 + "\n")
    wrong.chmod(0o600)
    with pytest.raises(OrchestratorApiError, match="answered 401") as bad:
        OrchestratorApi(url, wrong).nodes()
    assert "not-the-key" not in str(bad.value) and API_KEY not in str(bad.value)
    assert OrchestratorApi(url, key_file).nodes() == {}  # the right key: an empty fleet, not an error
