"""The command layer's own pieces, without Docker: typed options, node-name resolution, the provider registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetdeploy.cli import build_parser, options
from fleetdeploy.errors import InputError
from fleetdeploy.fleet.model import Fleet
from fleetdeploy.operations.fleet_inventory import FleetInventory, match_nodes
from fleetdeploy.operations.options import (
    ConfigureOptions,
    ExecOptions,
    GlobalOptions,
    HealthOptions,
    LogsOptions,
    OutputFormat,
    RollingOptions,
    Service,
    UpOptions,
)
from fleetdeploy.providers import registry
from fleetdeploy.providers.base import ClusterOutcome, ClusterPlan, Node, ProgressCallback


def _parse(*argv: str) -> tuple[GlobalOptions, object]:
    return options(build_parser().parse_args(list(argv)))


def test_the_command_line_becomes_typed_options() -> None:
    common, up = _parse("-f", "x.yaml", "up", "--reconfigure-all", "--join-timeout", "30", "-o", "json")
    assert common == GlobalOptions(Path("x.yaml"), False, OutputFormat.JSON)
    assert up == UpOptions(reconfigure_all=True, skip_health=False, join_timeout=30.0)
    _, configure = _parse("configure", "--rolling", "--batch", "2", "--limit", "a,b", "--limit", "c")
    assert configure == ConfigureOptions(limit=("a", "b", "c"), rolling=RollingOptions("2", None))
    _, plain = _parse("configure", "--check")
    assert plain == ConfigureOptions(check=True) and plain.rolling is None
    _, logs = _parse("logs", "n1", "sensor", "--tail", "5")
    assert logs == LogsOptions("n1", Service.SENSOR, 5)
    _, run = _parse("exec", "--sudo", "all", "uptime", "-p")
    assert run == ExecOptions("all", ("uptime", "-p"), sudo=True)
    _, health = _parse("health", "--limit", " a , ,b")
    assert health == HealthOptions(("a", "b"))


@pytest.mark.parametrize(("argv", "message"), [
    (["configure", "--batch", "2"], "--batch is only used with --rolling"),
    (["configure", "--max-unhealthy", "1"], "--max-unhealthy is only used with --rolling"),
    (["configure", "--rolling", "--batch", "0"], "--batch '0': give a node count"),
    (["configure", "--rolling", "--batch", "150%"], "--batch '150%'"),
    (["configure", "--rolling", "--max-unhealthy", "-1"], "--max-unhealthy must be 0 or more"),
    (["up", "--join-timeout", "0"], "--join-timeout must be more than 0"),
    (["up", "--join-timeout", "3601"], "--join-timeout must be more than 0 and at most 3600 seconds"),
    (["logs", "n1", "--tail", "0"], "--tail must be at least 1"),
    (["exec", "all"], "exec needs a command to run"),
])
def test_bad_options_are_refused_when_they_are_made(argv: list[str], message: str) -> None:
    with pytest.raises(InputError, match="^" + message.replace("(", r"\(").replace("+", r"\+")):
        _parse(*argv)


def _node(instance_id: str, region: str = "r1") -> Node:
    return Node(instance_id, f"f-{region}", region, None, "127.0.0.1", 2200, "ubuntu", "/k", True)


class CountingProvider:
    """A provider that only reports nodes and counts how often it was asked (resolution must rarely ask)."""

    def __init__(self, nodes: list[Node]) -> None:
        self.current = nodes
        self.asked = 0

    def nodes(self) -> list[Node]:
        self.asked += 1
        return list(self.current)

    def extra_inventory_vars(self) -> dict[str, object]:
        return {}

    def plan(self) -> list[ClusterPlan]:
        raise AssertionError("not used")

    def up(self, progress: ProgressCallback) -> list[ClusterOutcome]:
        raise AssertionError("not used")

    def down(self, progress: ProgressCallback) -> list[ClusterOutcome]:
        raise AssertionError("not used")

    def orchestrator_api_url(self) -> str | None:
        return None

    def prices(self) -> None:
        return None


@pytest.fixture()
def fleet(tmp_path: Path) -> Fleet:
    token = tmp_path / "token"
    token.write_text("tok\n")
    token.chmod(0o600)
    return Fleet.model_validate({"name": "f", "provider": "local", "regions": {"us-east-1": {"count": 2}},
                                 "orchestrator": {"endpoint": "nats://127.0.0.1:4222", "token_file": str(token)},
                                 "sensor": {"version": "v1.17.0"}})


def test_names_resolve_from_the_inventory_and_ask_the_provider_only_for_unknown_ones(
    fleet: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEETDEPLOY_STATE_DIR", str(tmp_path / "state"))
    provider = CountingProvider([_node("i-0aaa"), _node("i-0abb")])
    inventory = FleetInventory(fleet, lambda: provider, tmp_path / "inventory" / "f.yml")
    assert inventory.refresh() and provider.asked == 1 and inventory.path.stat().st_mode & 0o777 == 0o600
    # Every host pins its key under its instance id in the fleet's own known_hosts (runs/ssh.py).
    assert f"HostKeyAlias=i-0aaa -o UserKnownHostsFile={inventory.known_hosts}" in inventory.path.read_text()

    assert [n.instance_id for n in inventory.named(["f-i-0aaa", "i-0ab"])] == ["i-0aaa", "i-0abb"]
    assert provider.asked == 1  # answered from the inventory file

    # An unknown name is answered from the inventory too: the provider (SkyPilot's API server) is not started.
    provider.current.append(_node("i-0ccc"))
    with pytest.raises(InputError, match=r"^'i-0c' is not a node of this fleet \(nodes: f-i-0aaa, f-i-0abb\); a node "
                                         r"newer than f.yml\? run `deploy.py inventory`$"):
        inventory.named(["i-0c"])
    assert provider.asked == 1
    assert inventory.refresh() and [n.instance_id for n in inventory.named(["i-0c"])] == ["i-0ccc"]
    with pytest.raises(InputError, match=r"^'i-0a' is ambiguous \(nodes: f-i-0aaa, f-i-0abb, f-i-0ccc\)"):
        inventory.named(["i-0a"])
    with pytest.raises(InputError, match="^no node named"):
        inventory.named([" , "])

    # No inventory yet: the provider is asked, and an unknown name writes nothing.
    fresh = FleetInventory(fleet, lambda: provider, tmp_path / "other" / "f.yml")
    with pytest.raises(InputError, match=r"^'nope' is not a node of this fleet"):
        fresh.named(["nope"])
    assert not fresh.path.exists()
    assert [n.instance_id for n in fresh.named(["i-0aaa"])] == ["i-0aaa"] and fresh.path.exists()


def test_match_nodes_prefers_an_exact_name_over_a_prefix() -> None:
    nodes = [_node("i-1"), _node("i-10")]
    assert match_nodes(nodes, ["i-1"], lambda n: f"f-{n.instance_id}") == [nodes[0]]


def test_every_builtin_provider_registers_itself_and_is_made_through_the_registry(fleet: Fleet,
                                                                                    tmp_path: Path) -> None:
    entries = registry.entries()
    assert sorted(entries) == ["local", "skypilot"]
    assert entries["local"].runs_local_orchestrator and entries["local"].settings_key == "local"
    assert not entries["skypilot"].runs_local_orchestrator
    provider = registry.make_provider(fleet, tmp_path, lambda line: None)
    assert type(provider).__name__ == "LocalProvider" and provider.prices() is None
    sky = registry.make_provider(fleet.model_copy(update={"provider": "skypilot"}), tmp_path, lambda line: None)
    assert type(sky).__name__ == "SkyPilotProvider" and sky.orchestrator_api_url() is None
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(registry.ProviderEntry("local", "x:y", "another local"))


def test_known_hosts_keep_only_the_fleets_current_instances(tmp_path: Path) -> None:
    from fleetdeploy.runs.ssh import prune_known_hosts

    known = tmp_path / "known_hosts"
    known.write_text("i-0aaa ssh-ed25519 AAAA1\ni-0bbb ssh-ed25519 AAAA2\n\ni-0ccc ssh-rsa AAAA3\n")
    assert prune_known_hosts(known, {"i-0aaa", "i-0ccc"}) == 2  # i-0bbb and the blank line
    assert known.read_text() == "i-0aaa ssh-ed25519 AAAA1\ni-0ccc ssh-rsa AAAA3\n"
    assert known.stat().st_mode & 0o777 == 0o600
    assert prune_known_hosts(tmp_path / "none", {"x"}) == 0
