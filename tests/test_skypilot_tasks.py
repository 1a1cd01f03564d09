"""SkyPilot task files and rendered tasks load with the real sky.Task.from_yaml and carry no secret, no port.

Stops at the SDK boundary: from_yaml works offline, anything touching the instance catalog does not
(facts.md: SkyPilot) - so never repr() a Task here (its repr reads the catalog).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetdeploy.fleet.model import Fleet, load_fleet
from fleetdeploy.providers.skypilot.task import TEMPLATE, Candidate, candidates, render_task, to_yaml

REPO = Path(__file__).resolve().parents[1]
TASK_FILES = sorted((REPO / "skypilot-tasks").glob("*.yaml"))
TOKEN = "tok-9f8e7d6c5b4a-secret"
FORBIDDEN_KEYS = {"envs", "secrets", "ports", "file_mounts", "workdir", "run"}


@pytest.fixture(scope="module")
def sky() -> Any:
    os.environ["SKYPILOT_DISABLE_USAGE_COLLECTION"] = "1"
    import sky  # noqa: PLC0415 - lazily, like the provider

    return sky


def _write_fleet(directory: Path, regions: dict[str, Any], defaults: dict[str, Any]) -> Fleet:
    token = directory / "token"
    token.write_text(TOKEN)
    token.chmod(0o600)
    creds = directory / "creds"
    creds.write_text("[default]\naws_access_key_id = AKIASECRETID\naws_secret_access_key = SECRETKEYVALUE\n")
    data = {
        "name": "demo",
        "regions": regions,
        "defaults": defaults,
        "orchestrator": {"endpoint": "nats://orch.example.com:4222", "token_file": "token"},
        "aws_credentials": {"file": "creds"},
        "sensor": {"version": "1.0.0"},
        "labels": {"team": "edge"},
    }
    (directory / "fleet.yaml").write_text(yaml.safe_dump(data))
    return load_fleet(directory / "fleet.yaml")


@pytest.fixture()
def fleet(tmp_path: Path) -> Fleet:
    return _write_fleet(
        tmp_path,
        {"us-east-1": {"count": 3, "zone": "us-east-1c", "instance_type": "c5.large"}, "eu-central-1": {"count": 1}},
        {"spot": False, "disk_size_gb": 40, "image_id": "ami-0123456789abcdef0"},
    )


@pytest.fixture()
def failover(tmp_path: Path) -> Fleet:
    """Lists everywhere: region-level types and zones, default types, and the on-demand fallback."""
    return _write_fleet(
        tmp_path,
        {
            "us-east-1": {
                "count": 2,
                "zones": ["us-east-1b", "us-east-1a"],
                "instance_types": ["t3.medium", "t3a.medium"],
            },
            "eu-west-1": {"count": 1},
            "us-west-2": {"count": 1, "zone": "us-west-2c", "instance_type": "c5.large"},
        },
        {"instance_types": ["t3.large", "t2.large"], "on_demand_fallback": True, "image_id": "ami-0123456789abcdef0"},
    )


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def test_task_files_exist() -> None:
    assert TEMPLATE in TASK_FILES


@pytest.mark.parametrize("path", TASK_FILES, ids=[p.name for p in TASK_FILES])
def test_task_files_load_with_real_sky(sky: Any, path: Path) -> None:
    task = sky.Task.from_yaml(str(path))
    (resources,) = task.resources
    assert resources.ports is None
    assert not task.envs and not task.secrets
    data = yaml.safe_load(path.read_text())
    assert not FORBIDDEN_KEYS & _keys(data)
    assert "config" not in data  # NO_UPLOAD lives in the project config (see test_skypilot_config.py)
    assert "python3" in data["setup"]


def test_rendered_tasks_load_and_match_the_fleet(sky: Any, fleet: Fleet, tmp_path: Path) -> None:
    for region in fleet.regions:
        text = to_yaml(render_task(fleet, region))
        path = tmp_path / f"{region}.yaml"
        path.write_text(text)
        task = sky.Task.from_yaml(str(path))
        (resources,) = task.resources
        spec = fleet.regions[region]
        assert task.name == f"demo-{region}"
        assert task.num_nodes == spec.count
        assert resources.region == region and resources.zone == spec.zone
        assert resources.instance_type == (spec.instance_type or "t3.medium")
        assert resources.use_spot is False and resources.disk_size == 40
        assert resources.image_id == {region: "ami-0123456789abcdef0"}
        assert resources.labels == {"fleet": "demo", "region": region}
        assert resources.ports is None and not task.envs and not task.secrets
        for secret in (TOKEN, "SECRETKEYVALUE", "AKIASECRETID", "token_file", str(fleet.orchestrator.token_file)):
            assert secret not in text
        assert not FORBIDDEN_KEYS & _keys(yaml.safe_load(text))
        assert_launch_accepts_config(sky, yaml.safe_load(text))


def assert_launch_accepts_config(sky: Any, task: dict[str, Any]) -> None:
    """sky.launch refuses a task whose config sets a key outside OVERRIDEABLE_CONFIG_KEYS_IN_TASK (from_yaml doesn't)."""
    from sky.skylet import constants  # noqa: PLC0415

    allowed = {tuple(key) for key in constants.OVERRIDEABLE_CONFIG_KEYS_IN_TASK}

    def paths(value: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
        if isinstance(value, dict) and value:
            return [p for k, v in value.items() for p in paths(v, (*prefix, k))]
        return [prefix]

    for path in paths(task.get("config") or {}):
        if path:
            assert any(path[: len(key)] == key for key in allowed), f"sky.launch rejects task config key {path}"


def test_render_infra_without_zone_and_without_image(fleet: Fleet, tmp_path: Path) -> None:
    data = yaml.safe_load((tmp_path / "fleet.yaml").read_text())
    del data["defaults"]["image_id"]
    (tmp_path / "fleet.yaml").write_text(yaml.safe_dump(data))
    plain = load_fleet(tmp_path / "fleet.yaml")
    task = render_task(plain, "eu-central-1")
    assert task["resources"]["infra"] == "aws/eu-central-1"
    assert "image_id" not in task["resources"]
    assert render_task(fleet, "us-east-1")["resources"]["infra"] == "aws/us-east-1/us-east-1c"


def test_renderer_drops_forbidden_keys_from_a_bad_template(fleet: Fleet) -> None:
    template = {
        "name": "x",
        "envs": {"TOKEN": "leak"},
        "secrets": {"A": "b"},
        "file_mounts": {"/x": "/y"},
        "resources": {"ports": [4222]},
        "config": {"aws": {"remote_identity": "LOCAL_CREDENTIALS"}},
    }
    task = render_task(fleet, "us-east-1", template)
    assert not {"envs", "secrets", "file_mounts", "ports"} & _keys(task)
    assert "config" not in task  # aws.* is not a task-level key sky.launch accepts


def test_a_rejected_config_key_is_caught(sky: Any) -> None:
    with pytest.raises(AssertionError, match="rejects task config key"):
        assert_launch_accepts_config(sky, {"config": {"aws": {"remote_identity": "NO_UPLOAD"}}})


def test_candidates_order_spot_first_then_types_then_zones(failover: Fleet) -> None:
    order = [(c.instance_type, c.zone, c.spot) for c in candidates(failover, "us-east-1")]
    spot = [
        ("t3.medium", "us-east-1b"),
        ("t3.medium", "us-east-1a"),
        ("t3a.medium", "us-east-1b"),
        ("t3a.medium", "us-east-1a"),
    ]
    assert order == [(t, z, True) for t, z in spot] + [(t, z, False) for t, z in spot]
    # A region without its own types takes the defaults' list; a single zone-less type still fails over on-demand.
    assert [c.describe() for c in candidates(failover, "eu-west-1")] == [
        "t3.large spot any",
        "t2.large spot any",
        "t3.large on-demand any",
        "t2.large on-demand any",
    ]
    assert candidates(failover, "us-west-2") == [
        Candidate("c5.large", "us-west-2c", spot=True),
        Candidate("c5.large", "us-west-2c", spot=False),
    ]


def test_single_candidate_keeps_plain_resources(fleet: Fleet) -> None:
    assert candidates(fleet, "us-east-1") == [Candidate("c5.large", "us-east-1c", False)]
    assert candidates(fleet, "eu-central-1") == [Candidate("t3.medium", None, False)]
    resources = render_task(fleet, "us-east-1")["resources"]
    assert "ordered" not in resources and "any_of" not in resources
    assert list(resources)[:3] == ["infra", "instance_type", "use_spot"]


def test_rendered_failover_tasks_load_as_ordered_lists(sky: Any, failover: Fleet, tmp_path: Path) -> None:
    for region in failover.regions:
        text = to_yaml(render_task(failover, region))
        path = tmp_path / f"{region}.yaml"
        path.write_text(text)
        data = yaml.safe_load(text)
        assert set(data["resources"]) == {"ordered", "disk_size", "labels", "image_id"}
        for task in (sky.Task.from_yaml(str(path)), sky.Task.from_yaml_config(yaml.safe_load(text))):
            assert isinstance(task.resources, list)  # ordered: tried in this order, not sorted by price
            got = [(r.region, r.instance_type, r.zone, r.use_spot) for r in task.resources]
            want = [(region, c.instance_type, c.zone, c.spot) for c in candidates(failover, region)]
            assert got == want
            for resources in task.resources:
                assert resources.disk_size == 30 and resources.labels == {"fleet": "demo", "region": region}
                assert resources.image_id == {region: "ami-0123456789abcdef0"} and resources.ports is None
        assert TOKEN not in text and "SECRETKEYVALUE" not in text
        assert not FORBIDDEN_KEYS & _keys(data)
        assert_launch_accepts_config(sky, data)


def test_template_placement_never_mixes_with_candidates(failover: Fleet) -> None:
    template = {"resources": {"any_of": [{"instance_type": "p3.2xlarge"}], "cloud": "gcp", "zone": "x", "cpus": 2}}
    resources = render_task(failover, "us-east-1", template)["resources"]
    assert not {"any_of", "cloud", "zone", "infra", "instance_type", "use_spot"} & set(resources)
    assert resources["cpus"] == 2 and len(resources["ordered"]) == 8


def test_a_regions_own_image_wins_over_the_defaults(sky: Any, tmp_path: Path) -> None:
    """AMIs exist in one region only: a fleet spanning regions names one per region (import-legacy does)."""
    fleet = _write_fleet(
        tmp_path,
        {"us-east-1": {"count": 1, "image_id": "ami-0aaaaaaaaaaaaaaaa"}, "eu-central-1": {"count": 1}},
        {"image_id": "ami-0123456789abcdef0"},
    )
    for region, image in (("us-east-1", "ami-0aaaaaaaaaaaaaaaa"), ("eu-central-1", "ami-0123456789abcdef0")):
        path = tmp_path / f"{region}.yaml"
        path.write_text(to_yaml(render_task(fleet, region)))
        (resources,) = sky.Task.from_yaml(str(path)).resources
        assert resources.image_id == {region: image}
