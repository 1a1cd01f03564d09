"""SkyPilot provider against the `sky` TEST DOUBLE (tests/sky_double.py), which answers with real sky classes."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import requests
import yaml
from sky_double import KEY_CONTENT, KEY_PATH, FakeCluster, FakeNode, SkyDouble, status_record

from fleetdeploy.errors import FleetError
from fleetdeploy.fleet.model import Fleet, load_fleet
from fleetdeploy.fleet.skypilot_spec import SkyPilotSpec
from fleetdeploy.providers.skypilot.provider import SkyPilotProvider
from fleetdeploy.providers.skypilot.records import nodes_from_status

REPO = Path(__file__).resolve().parents[1]
UP = SkyDouble.ClusterStatus.UP
INIT = SkyDouble.ClusterStatus.INIT
E1, W2 = "demo-eu-west-1", "demo-us-west-2"
NO_STATE = Path("/nonexistent/state")  # the double replaces the SDK loader, and the key is local: nothing is written


def make_fleet(tmp_path: Path, regions: dict[str, dict[str, object]] | None = None) -> Fleet:
    token = tmp_path / "token"
    token.write_text("tok\n")
    token.chmod(0o600)
    data = {
        "name": "demo",
        "regions": regions or {"us-west-2": {"count": 2, "zone": "us-west-2b"}, "eu-west-1": {"count": 1}},
        "orchestrator": {"endpoint": "orch.example.com", "token_file": "token"},
        "sensor": {"version": "1.0.0"},
    }
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_fleet(path)


class Progress:
    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []

    def __call__(self, cluster: str, message: str) -> None:
        self.messages.append((cluster, message))


@pytest.fixture(autouse=True)
def sky_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """SkyPilot's client key where the records say it is, as on a machine whose local API server made it (a key
    path not readable here means a remote server's: the provider then keeps the key the record carries)."""
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SKYPILOT_API_SERVER_ENDPOINT", raising=False)
    key = Path(os.path.expanduser(KEY_PATH))
    key.parent.mkdir(parents=True)
    key.write_text(KEY_CONTENT)
    key.chmod(0o600)
    return key


@pytest.fixture()
def fleet(tmp_path: Path) -> Fleet:
    return make_fleet(tmp_path)


def up_cluster(name: str, region: str, count: int, status: object = UP, base: int = 1) -> FakeCluster:
    nodes = [FakeNode(f"i-{name}-{i}", f"198.51.100.{base + i}") for i in range(count)]
    return FakeCluster(name, region, None, status, nodes)


def test_all_launches_submitted_before_first_get(fleet: Fleet) -> None:
    double = SkyDouble()
    progress = Progress()
    outcomes = SkyPilotProvider(fleet, NO_STATE, sdk_loader=lambda: double).up(progress)
    assert [(o.cluster, o.ok, o.action) for o in outcomes] == [(E1, True, "launched"), (W2, True, "launched")]
    kinds = [kind for kind, _ in double.calls]
    launches = [i for i, k in enumerate(kinds) if k == "launch"]
    gets_after_status = [i for i, k in enumerate(kinds) if k == "get"][1:]
    assert len(launches) == 2 and max(launches) < min(gets_after_status)
    assert len(double.clusters[W2].nodes) == 2 and double.clusters[W2].zone == "us-west-2b"
    task = double.launched_tasks[W2]
    assert task.num_nodes == 2 and next(iter(task.resources)).use_spot is True
    assert (W2, "submitted") in progress.messages and (E1, "launched") in progress.messages


def test_in_flight_is_bounded(tmp_path: Path) -> None:
    regions = {r: {"count": 1} for r in ("us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-west-1")}
    fleet = make_fleet(tmp_path, regions)
    double = SkyDouble()
    SkyPilotProvider(fleet, NO_STATE, sdk_loader=lambda: double, max_in_flight=2).up(Progress())
    outstanding = peak = 0
    for kind, _ in double.calls[2:]:  # skip the status request and its get
        outstanding += 1 if kind == "launch" else -1
        peak = max(peak, outstanding)
    assert peak == 2
    assert len(double.clusters) == 5


def test_healthy_clusters_are_left_alone(fleet: Fleet) -> None:
    double = SkyDouble()
    double.add(up_cluster(W2, "us-west-2", 2))
    double.add(up_cluster(E1, "eu-west-1", 1, base=10))
    outcomes = SkyPilotProvider(fleet, NO_STATE, sdk_loader=lambda: double).up(Progress())
    assert {o.action for o in outcomes} == {"unchanged"}
    assert not [c for c in double.calls if c[0] == "launch"]


def test_relaunch_on_init_short_and_missing(fleet: Fleet) -> None:
    double = SkyDouble()
    double.add(up_cluster(W2, "us-west-2", 2, status=INIT))
    outcomes = SkyPilotProvider(fleet, NO_STATE, sdk_loader=lambda: double).up(Progress())
    assert [(o.cluster, o.action) for o in outcomes] == [(E1, "launched"), (W2, "relaunched")]
    # survivors kept: the two existing instance ids are still there
    assert [n.instance_id for n in double.clusters[W2].nodes] == [f"i-{W2}-0", f"i-{W2}-1"]

    short = SkyDouble()
    short.add(up_cluster(W2, "us-west-2", 1))
    short.add(up_cluster(E1, "eu-west-1", 1, base=10))
    outcomes = SkyPilotProvider(fleet, NO_STATE, sdk_loader=lambda: short).up(Progress())
    assert [(o.cluster, o.action) for o in outcomes] == [(E1, "unchanged"), (W2, "resized")]
    assert len(short.clusters[W2].nodes) == 2
    assert short.launch_kwargs[W2]["resize"] is True


def test_count_change_resizes_and_shrink_keeps_the_head(fleet: Fleet) -> None:
    double = SkyDouble()
    double.add(up_cluster(W2, "us-west-2", 4))
    double.add(up_cluster(E1, "eu-west-1", 1, base=10))
    outcomes = SkyPilotProvider(fleet, NO_STATE, sdk_loader=lambda: double).up(Progress())
    assert [(o.cluster, o.action) for o in outcomes] == [(E1, "unchanged"), (W2, "resized")]
    ids = [n.instance_id for n in double.clusters[W2].nodes]
    # SkyPilot 0.14.1 shrinks by terminating every worker and creating count-1 new ones; the head stays.
    assert len(ids) == 2 and ids[0] == f"i-{W2}-0" and f"i-{W2}-1" not in ids


@pytest.mark.parametrize(
    ("error", "phrase"),
    [
        (SkyDouble.exceptions.CloudUserIdentityError("no identity"), "AWS credentials are missing or unusable"),
        (SkyDouble.exceptions.NoCloudAccessError("no access"), "no usable cloud access"),
        (requests.exceptions.ConnectionError("catalog\nline two"), "cannot reach the SkyPilot API server"),
        (RuntimeError("boom\nsecond line"), "RuntimeError: boom"),
    ],
)
def test_failing_region_does_not_stop_the_others(fleet: Fleet, error: BaseException, phrase: str) -> None:
    double = SkyDouble(launch_errors={W2: error})
    progress = Progress()
    outcomes = {o.cluster: o for o in SkyPilotProvider(fleet, NO_STATE, sdk_loader=lambda: double).up(progress)}
    assert outcomes[E1].ok and outcomes[E1].action == "launched"
    assert not outcomes[W2].ok and outcomes[W2].action == "failed"
    assert outcomes[W2].error is not None and phrase in outcomes[W2].error and "\n" not in outcomes[W2].error
    assert any(c == W2 and m.startswith("failed:") for c, m in progress.messages)


def test_submit_error_and_status_error(fleet: Fleet) -> None:
    double = SkyDouble(submit_errors={E1: SkyDouble.exceptions.NoCloudAccessError("x")})
    outcomes = {o.cluster: o for o in SkyPilotProvider(fleet, NO_STATE, sdk_loader=lambda: double).up(Progress())}
    assert not outcomes[E1].ok and outcomes[W2].ok

    broken = SkyDouble(status_error=requests.exceptions.ConnectionError("api down"))
    outcomes_list = SkyPilotProvider(fleet, NO_STATE, sdk_loader=lambda: broken).up(Progress())
    assert [o.ok for o in outcomes_list] == [False, False]
    with pytest.raises(FleetError, match="cannot read cluster status"):
        SkyPilotProvider(fleet, NO_STATE, sdk_loader=lambda: broken).nodes()


def test_down_only_own_clusters(fleet: Fleet) -> None:
    double = SkyDouble(down_errors={E1: SkyDouble.exceptions.CloudUserIdentityError("denied")})
    double.add(up_cluster(W2, "us-west-2", 2))
    double.add(up_cluster(E1, "eu-west-1", 1, base=10))
    double.add(up_cluster("demo-us-west-2-other", "us-west-2", 1, base=20))
    double.add(up_cluster("other-us-west-2", "us-west-2", 1, base=30))
    outcomes = {o.cluster: o for o in SkyPilotProvider(fleet, NO_STATE, sdk_loader=lambda: double).down(Progress())}
    assert [name for kind, name in double.calls if kind == "down"] == [E1, W2]
    assert outcomes[W2].ok and outcomes[W2].action == "removed"
    assert not outcomes[E1].ok and "AWS credentials" in (outcomes[E1].error or "")
    assert set(double.clusters) == {E1, "demo-us-west-2-other", "other-us-west-2"}


def test_down_missing_cluster_is_fine(fleet: Fleet) -> None:
    double = SkyDouble()
    double.add(up_cluster(W2, "us-west-2", 2))
    outcomes = {o.cluster: o for o in SkyPilotProvider(fleet, NO_STATE, sdk_loader=lambda: double).down(Progress())}
    assert outcomes[E1].ok and outcomes[E1].action == "unchanged"
    assert [name for kind, name in double.calls if kind == "down"] == [W2]


def test_nodes_two_regions_multi_node(fleet: Fleet) -> None:
    double = SkyDouble()
    SkyPilotProvider(fleet, NO_STATE, sdk_loader=lambda: double).up(Progress())
    double.add(up_cluster("other-eu-west-1", "eu-west-1", 1, base=50))
    nodes = SkyPilotProvider(fleet, NO_STATE, sdk_loader=lambda: double).nodes()
    assert [(n.cluster, n.region) for n in nodes] == [(E1, "eu-west-1"), (W2, "us-west-2"), (W2, "us-west-2")]
    by_id = {n.instance_id: n for n in nodes}
    assert len(by_id) == 3
    for node in nodes:
        assert node.user == "ubuntu" and node.port == 22 and node.spot is True
        assert node.key_file == os.path.expanduser(KEY_PATH)
        assert (
            double.clusters[node.cluster]
            .nodes[[x.instance_id for x in double.clusters[node.cluster].nodes].index(node.instance_id)]
            .ip
            == node.host
        )
    assert {n.zone for n in nodes if n.cluster == W2} == {"us-west-2b"}
    assert ("status", f"{E1},{W2}") in double.calls


def test_nodes_of_init_clusters_count_and_missing_ips_do_not() -> None:
    healthy = up_cluster("f-us-east-1", "us-east-1", 3)
    # INIT after a partial preemption: the survivors are still configured and checked.
    init = up_cluster("f-us-east-2", "us-east-2", 2, status=INIT, base=20)
    no_ip = up_cluster("f-us-west-1", "us-west-1", 2, base=30)
    no_ip.nodes[1].ip = None
    stopped = up_cluster("f-us-west-2", "us-west-2", 1, status=SkyDouble.ClusterStatus.STOPPED, base=40)
    nodes = nodes_from_status([status_record(c, True) for c in (healthy, init, no_ip, stopped)])
    assert [n.instance_id for n in nodes] == ["i-f-us-east-1-0", "i-f-us-east-1-1", "i-f-us-east-1-2",
                                              "i-f-us-east-2-0", "i-f-us-east-2-1"]
    assert [n.host for n in nodes][:3] == ["198.51.100.1", "198.51.100.2", "198.51.100.3"]


def test_nodes_shared_ip_different_ports_and_order_independent() -> None:
    cluster = FakeCluster(
        "f-us-east-1",
        "us-east-1",
        "us-east-1a",
        UP,
        [FakeNode("i-b", "192.0.2.9", 2201), FakeNode("i-a", "192.0.2.9", 2202)],
    )
    nodes = nodes_from_status([status_record(cluster, True)])
    assert {(n.instance_id, n.port) for n in nodes} == {("i-b", 2201), ("i-a", 2202)}
    assert {n.zone for n in nodes} == {"us-east-1a"}
    cluster.nodes.reverse()
    assert {(n.instance_id, n.port) for n in nodes_from_status([status_record(cluster, True)])} == {
        ("i-b", 2201),
        ("i-a", 2202),
    }


def test_nodes_need_credentials_and_fall_back_without_cluster_info() -> None:
    cluster = up_cluster("f-us-east-1", "us-east-1", 1)
    other = up_cluster("f-eu-west-1", "eu-west-1", 1)
    # A cluster without SSH credentials is skipped; the other clusters' nodes are still reported.
    nodes = nodes_from_status([status_record(cluster, False), status_record(other, True)])
    assert [n.cluster for n in nodes] == ["f-eu-west-1"]
    cluster.with_cluster_info = False
    (node,) = nodes_from_status([status_record(cluster, True)])
    assert node.instance_id == "ip-198-51-100-1-22"


def test_a_server_that_withholds_the_launchers_key_leaves_the_operators() -> None:
    cluster = up_cluster("f-us-east-1", "us-east-1", 1)
    withheld = status_record(cluster, False)  # what SkyPilot answers its `viewer` role: no credentials
    assert nodes_from_status([withheld]) == []
    (node,) = nodes_from_status([withheld], own_key="/home/op/.ssh/id_ed25519")
    assert (node.key_file, node.user) == ("/home/op/.ssh/id_ed25519", "ubuntu")
    (launcher,) = nodes_from_status([status_record(cluster, True)], own_key="/home/op/.ssh/id_ed25519")
    assert launcher.key_file != "/home/op/.ssh/id_ed25519"


def test_plan_says_what_up_will_do_per_cluster(tmp_path: Path) -> None:
    regions = {"us-east-1": {"count": 2}, "us-east-2": {"count": 2}, "us-west-1": {"count": 3},
               "us-west-2": {"count": 1}}
    fleet = make_fleet(tmp_path, regions)
    double = SkyDouble()
    double.add(up_cluster("demo-us-east-1", "us-east-1", 2))
    double.add(up_cluster("demo-us-east-2", "us-east-2", 2, status=INIT, base=10))
    double.add(up_cluster("demo-us-west-1", "us-west-1", 1, base=20))
    plans = {p.cluster: p for p in SkyPilotProvider(fleet, NO_STATE, sdk_loader=lambda: double).plan()}
    assert {name: p.action.describe() for name, p in plans.items() if p.action} == {
        "demo-us-east-1": "nothing to do",
        "demo-us-east-2": "heal: relaunch to bring back missing node(s) of 2",
        "demo-us-west-1": "resize 1 -> 3 node(s)",
        "demo-us-west-2": "launch 1 node(s)",
    }
    assert not [c for c in double.calls if c[0] in ("launch", "down")]
    broken = SkyDouble(status_error=requests.exceptions.ConnectionError("api down"))
    notices: list[str] = []
    plans_unknown = SkyPilotProvider(fleet, NO_STATE, sdk_loader=lambda: broken, notice=notices.append).plan()
    assert [p.action for p in plans_unknown] == [None] * 4 and "cannot read cluster status" in notices[0]


def test_importing_the_provider_and_rendering_do_not_import_sky(fleet: Fleet, tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from fleetdeploy.fleet.model import load_fleet
        from fleetdeploy.providers.skypilot.provider import SkyPilotProvider
        from fleetdeploy.providers.skypilot.task import render_task, to_yaml
        text = to_yaml(render_task(load_fleet({str(tmp_path / "fleet.yaml")!r}), "us-west-2"))
        assert "infra: aws/us-west-2/us-west-2b" in text
        print("sky" in sys.modules, any(m.startswith("sky.") for m in sys.modules))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False False"


def test_loader_disables_usage_collection_and_installs_the_project_config(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        os.environ.pop("SKYPILOT_DISABLE_USAGE_COLLECTION", None)
        from fleetdeploy.providers.skypilot.provider import load_sky
        sky = load_sky(Path({str(tmp_path / "project.yaml")!r}))
        from sky import skypilot_config
        print(os.environ["SKYPILOT_DISABLE_USAGE_COLLECTION"], hasattr(sky.exceptions, "ClusterDoesNotExist"),
              skypilot_config.get_nested(("aws", "remote_identity"), None))
        """
    )
    env = dict(os.environ, HOME=str(tmp_path))
    env.pop("SKYPILOT_PROJECT_CONFIG", None)
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                            check=False, env=env | {"PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1 True NO_UPLOAD"


def test_errors_keep_their_first_paragraph_without_terminal_codes() -> None:
    from fleetdeploy.providers.skypilot.errors import describe_error

    error = SkyDouble.exceptions.CloudUserIdentityError(
        "\x1b[31mFailed to get AWS user identity.\x1b[0m Details: no credentials\n"
        "Run the following commands:\n  $ aws configure\n\nSecond paragraph with internals")
    text = describe_error(SkyDouble, error)
    assert text == ("AWS credentials are missing or unusable (run: sky check aws): Failed to get AWS user identity. "
                    "Details: no credentials Run the following commands: $ aws configure")


def test_the_credentials_hint_names_the_clusters_cloud_or_every_cloud_of_the_fleet() -> None:
    from fleetdeploy.providers.skypilot.errors import describe_error

    identity = SkyDouble.exceptions.CloudUserIdentityError("Failed to get GCP user identity.")
    assert describe_error(SkyDouble, identity, ["gcp"]).startswith(
        "GCP credentials are missing or unusable (run: sky check gcp): Failed to get GCP user identity.")
    assert describe_error(SkyDouble, identity, ["azure"]).startswith("Azure credentials are missing or unusable (run: "
                                                                     "sky check azure)")
    access = SkyDouble.exceptions.NoCloudAccessError("Cloud access is not set up.")
    assert describe_error(SkyDouble, access, ["aws", "gcp", "aws"]).startswith(
        "no usable cloud access (run: sky check aws gcp): ")
    assert describe_error(SkyDouble, identity, ["aws", "azure"]).startswith(
        "cloud credentials are missing or unusable (run: sky check aws azure)")


def test_a_teams_api_server_shows_every_operators_clusters_and_sends_the_key(tmp_path: Path, sky_key: Path) -> None:
    """Another operator launched the fleet: SkyPilot lists those clusters only with all_users, and a remote server's
    key path is on the server, so the key it sends is kept here (0600) for the inventory."""
    fleet = make_fleet(tmp_path)
    fleet = fleet.model_copy(update={"skypilot": SkyPilotSpec(api_server="https://sky.example.com")})
    double = SkyDouble(user_hash="operator-b")
    double.add(up_cluster(W2, "us-west-2", 2))
    state = tmp_path / "state"
    nodes = SkyPilotProvider(fleet, state, sdk_loader=lambda: double).nodes()
    assert len(nodes) == 2  # seen though launched by someone else
    (key,) = {n.key_file for n in nodes}
    assert Path(key).parent == state / "demo" / "skypilot-keys" and Path(key).read_text() == KEY_CONTENT
    assert stat.S_IMODE(Path(key).stat().st_mode) == 0o600
    # A local server (no endpoint named anywhere): its key path is this machine's, used as it is.
    local = SkyPilotProvider(make_fleet(tmp_path), state, sdk_loader=lambda: double).nodes()
    assert {n.key_file for n in local} == {os.path.expanduser(KEY_PATH)}
    # A server named only by `sky api login`: its key path is not readable here, so the key sent is kept.
    sky_key.unlink()
    logged_in = SkyPilotProvider(make_fleet(tmp_path), state, sdk_loader=lambda: double).nodes()
    assert {n.key_file for n in logged_in} == {key}


@pytest.mark.parametrize(("value", "problem"), [
    ("https://admin:secret@sky.example.com", "must not contain credentials: run `sky api login -e URL`"),
    ("sky.example.com:46580", "needs a scheme"),
    ("http://sky.example.com/api", "without a path"),
])
def test_the_api_server_url_is_checked(value: str, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        SkyPilotSpec(api_server=value)
    assert SkyPilotSpec(api_server="HTTP://Sky.Example.com:46580/").api_server == "http://sky.example.com:46580"


def test_the_fleet_files_api_server_wins_over_the_environment(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        os.environ["SKYPILOT_API_SERVER_ENDPOINT"] = "http://from-env.example.com:46580"
        from fleetdeploy.providers.skypilot.provider import load_sky
        load_sky(Path({str(tmp_path / "project.yaml")!r}), "https://team.example.com")
        from sky.server import common
        print(common.get_server_url())
        """
    )
    env = dict(os.environ, HOME=str(tmp_path))
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                            check=False, env=env | {"PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "https://team.example.com"
