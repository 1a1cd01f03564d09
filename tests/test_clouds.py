"""Fleets on AWS, GCP and Azure: the `cloud:` key, per-cloud checks and defaults, the rendered `infra`, and the
checks and prices from each cloud's SkyPilot catalog, held to the real sky.catalog's answers (offline sandbox).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetdeploy.errors import InputError
from fleetdeploy.fleet.clouds import CloudName
from fleetdeploy.fleet.model import load_fleet
from fleetdeploy.providers.skypilot.catalog import check_against_catalogs
from fleetdeploy.providers.skypilot.pricing import catalog_file, region_prices
from fleetdeploy.providers.skypilot.task import render_task, to_yaml
from tests.test_pricing import HEADER, run_probe

REPO = Path(__file__).resolve().parents[1]
MIXED = {
    "us-east-1": {"count": 2},
    "us-central1": {"cloud": "gcp", "count": 1, "zones": ["us-central1-b", "us-central1-a"]},
    "eastus": {"cloud": "azure", "count": 1},
}
# (cloud, type, on-demand, spot, region, zone): SkyPilot's vms.csv rows (GCP zones are names; Azure has none).
ROWS = [
    ("gcp", "e2-medium", "0.0335", "0.0101", "us-central1", "us-central1-a"),
    ("gcp", "e2-medium", "0.0335", "0.0093", "us-central1", "us-central1-b"),
    ("gcp", "n2-standard-2", "0.0971", "0.0233", "us-central1", "us-central1-a"),
    ("gcp", "e2-medium", "0.0377", "0.0113", "europe-west4", "europe-west4-a"),
    ("azure", "Standard_B2s", "0.0416", "0.0083", "eastus", ""),
    ("azure", "Standard_D2s_v5", "0.0960", "0.0192", "eastus", ""),
    ("aws", "t3.medium", "0.0416", "0.0125", "us-east-1", "use1-az1"),
]


def write_fleet(directory: Path, regions: dict[str, Any], defaults: dict[str, Any] | None = None) -> Path:
    token = directory / "token"
    token.write_text("tok\n")
    token.chmod(0o600)
    data = {"name": "multi", "regions": regions, "defaults": defaults or {},
            "orchestrator": {"endpoint": "orch.example.com", "token_file": "token"}, "sensor": {"version": "1.0.0"}}
    path = directory / "fleet.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# Azure's catalog has its own columns and no AvailabilityZone (sky/catalog/data_fetchers/fetch_azure.py).
AZURE_HEADER = "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,Region,Generation"


def seed_catalogs(home: Path, clouds: tuple[str, ...] = ("aws", "gcp", "azure")) -> None:
    """Each cloud's vms.csv where SkyPilot keeps it (no .meta md5 beside it: SkyPilot never re-downloads it)."""
    for cloud in clouds:
        path = home / ".sky" / "catalogs" / "v8" / cloud / "vms.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        if cloud == "azure":
            header = AZURE_HEADER
            lines = [f"{kind},,,2.0,4.0,,{price},{spot},{region},V2" for c, kind, price, spot, region, _ in ROWS
                     if c == cloud]
        else:
            header = HEADER
            lines = [f"{kind},,,2.0,4.0,,{price},{spot},{region},{zone},x86_64,,,,,0"
                     for c, kind, price, spot, region, zone in ROWS if c == cloud]
        path.write_text("\n".join([header, *lines]) + "\n")


def _error(path: Path) -> str:
    with pytest.raises(InputError) as info:
        load_fleet(path)
    message = str(info.value)
    assert "\n" not in message
    return message.split(": ", 1)[1]


def test_a_fleet_spans_three_clouds_and_aws_stays_the_default(tmp_path: Path) -> None:
    fleet = load_fleet(write_fleet(tmp_path, MIXED, {"instance_type": "t3.large", "image_id": "ami-0123456789abcdef0"}))
    assert [fleet.cloud_of(r) for r in fleet.regions] == [CloudName.AWS, CloudName.GCP, CloudName.AZURE]
    assert fleet.clouds == [CloudName.AWS, CloudName.GCP, CloudName.AZURE]
    # The defaults' type and image are the defaults' cloud's; other clouds' regions get their own defaults.
    assert fleet.instance_types_of("us-east-1") == ["t3.large"]
    assert fleet.instance_types_of("us-central1") == ["e2-medium"]
    assert fleet.instance_types_of("eastus") == ["Standard_B2s"]
    assert fleet.image_id_of("us-east-1") == "ami-0123456789abcdef0" and fleet.image_id_of("eastus") is None
    assert [fleet.cluster_name(r) for r in fleet.regions] == ["multi-us-east-1", "multi-us-central1", "multi-eastus"]


def test_the_defaults_may_name_another_cloud(tmp_path: Path) -> None:
    fleet = load_fleet(write_fleet(tmp_path, {"us-central1": {"count": 1}, "us-east-1": {"cloud": "aws", "count": 1}},
                                   {"cloud": "gcp", "instance_types": ["n2-standard-2", "e2-medium"]}))
    assert fleet.instance_types_of("us-central1") == ["n2-standard-2", "e2-medium"]
    assert fleet.instance_types_of("us-east-1") == ["t3.medium"]


@pytest.mark.parametrize(
    ("regions", "defaults", "expected"),
    [
        ({"us-central1": {"count": 1}}, None,
         "regions.us-central1: unknown AWS region (it is a GCP region: set cloud: gcp)"),
        ({"eastus": {"cloud": "gcp", "count": 1}}, None,
         "regions.eastus: unknown GCP region (it is an Azure region: set cloud: azure)"),
        ({"eastus": {"cloud": "azure", "count": 1, "zone": "1"}}, None,
         "regions.eastus.zone: Azure regions have no zones in SkyPilot: leave the key out"),
        ({"us-central1": {"cloud": "gcp", "count": 1, "zones": ["us-central1-a", "us-east1-b"]}}, None,
         "regions.us-central1.zones: zone 'us-east1-b' is not in region us-central1"),
        ({"us-central1": {"cloud": "gcp", "count": 1, "instance_type": "t3.medium"}}, None,
         "regions.us-central1.instance_type: is not a GCP machine type (e.g. e2-medium)"),
        ({"eastus": {"cloud": "azure", "count": 1, "instance_types": ["Standard_B2s", "e2-medium"]}}, None,
         "regions.eastus.instance_types.1: is not an Azure VM size (e.g. Standard_B2s)"),
        ({"us-central1": {"count": 1}}, {"cloud": "gcp", "instance_type": "t3.medium"},
         "defaults.instance_type: is not a GCP machine type (e.g. e2-medium)"),
        ({"us-east-1": {"count": 1, "cloud": "oracle"}}, None, "regions.us-east-1.cloud: "),
        ({"westeurope": {"count": 1}}, {"cloud": "azure"}, None),
    ],
)
def test_each_cloud_checks_its_own_names(tmp_path: Path, regions: dict[str, Any], defaults: dict[str, Any] | None,
                                         expected: str | None) -> None:
    path = write_fleet(tmp_path, regions, defaults)
    if expected is None:
        load_fleet(path)
        return
    assert _error(path).startswith(expected)


def test_rendered_tasks_name_the_cloud_in_infra(tmp_path: Path) -> None:
    fleet = load_fleet(write_fleet(tmp_path, MIXED, {"on_demand_fallback": True}))
    gcp = render_task(fleet, "us-central1")["resources"]
    zones = ["gcp/us-central1/us-central1-b", "gcp/us-central1/us-central1-a"]
    assert [r["infra"] for r in gcp["ordered"]] == zones * 2
    assert {r["instance_type"] for r in gcp["ordered"]} == {"e2-medium"}
    azure = render_task(fleet, "eastus")["resources"]
    assert [(r["infra"], r["use_spot"]) for r in azure["ordered"]] == [("azure/eastus", True), ("azure/eastus", False)]
    assert render_task(fleet, "us-east-1")["resources"]["ordered"][0]["infra"] == "aws/us-east-1"


def test_rendered_gcp_and_azure_tasks_load_with_the_real_sdk(tmp_path: Path) -> None:
    os.environ["SKYPILOT_DISABLE_USAGE_COLLECTION"] = "1"
    import sky  # noqa: PLC0415 - lazily, like the provider

    fleet = load_fleet(write_fleet(tmp_path, MIXED))
    for region, cloud, zone, kind in (("us-central1", "GCP", "us-central1-b", "e2-medium"),
                                      ("eastus", "Azure", None, "Standard_B2s")):
        path = tmp_path / f"{region}.yaml"
        path.write_text(to_yaml(render_task(fleet, region)))
        resources = list(sky.Task.from_yaml(str(path)).resources)
        assert {str(r.cloud) for r in resources} == {cloud}
        assert {r.region for r in resources} == {region} and resources[0].zone == zone
        assert {r.instance_type for r in resources} == {kind} and resources[0].use_spot is True


def test_catalogs_on_disk_refuse_what_their_cloud_does_not_offer(home: Path, tmp_path: Path) -> None:
    seed_catalogs(home)
    check_against_catalogs(load_fleet(write_fleet(tmp_path, MIXED)))  # all offered
    cases = [
        ({"europe-west1": {"cloud": "gcp", "count": 1}},
         "regions.europe-west1: not a region in SkyPilot's GCP catalog"),
        ({"us-central1": {"cloud": "gcp", "count": 1, "zone": "us-central1-f"}},
         "regions.us-central1: zone 'us-central1-f' is not in SkyPilot's GCP catalog"),
        ({"us-central1": {"cloud": "gcp", "count": 1, "instance_type": "n2-standard-4"}},
         "regions.us-central1: instance type 'n2-standard-4' is not offered in us-central1 according to SkyPilot's "
         "GCP catalog"),
        ({"eastus": {"cloud": "azure", "count": 1}}, None),
        ({"westus2": {"cloud": "azure", "count": 1}}, "regions.westus2: not a region in SkyPilot's Azure catalog"),
        ({"us-east-1": {"count": 1, "instance_type": "t3.large"}},
         "regions.us-east-1: instance type 't3.large' is not offered in us-east-1 according to SkyPilot's AWS"),
        ({"us-east-1": {"count": 1}, "eastus": {"cloud": "azure", "count": 1}}, None),
    ]
    for index, (regions, expected) in enumerate(cases):
        directory = tmp_path / f"case{index}"
        directory.mkdir()
        fleet = load_fleet(write_fleet(directory, regions))
        if expected is None:
            check_against_catalogs(fleet)
            continue
        with pytest.raises(InputError) as info:
            check_against_catalogs(fleet)
        assert str(info.value).startswith(expected), (expected, str(info.value))


def test_a_cloud_without_a_catalog_keeps_the_shipped_checks(home: Path, tmp_path: Path) -> None:
    seed_catalogs(home, ("aws",))
    check_against_catalogs(load_fleet(write_fleet(tmp_path, {"us-central1": {"cloud": "gcp", "count": 1,
                                                                             "instance_type": "n2-standard-4"}})))


def test_prices_come_from_each_clouds_catalog(home: Path, tmp_path: Path) -> None:
    seed_catalogs(home)
    price = region_prices(load_fleet(write_fleet(tmp_path, MIXED)))
    assert [(r.cloud, r.instance_type, r.per_node_hour) for r in price.regions] == [
        ("aws", "t3.medium", 0.0125), ("gcp", "e2-medium", 0.0093), ("azure", "Standard_B2s", 0.0083)]
    assert price.per_hour == pytest.approx(2 * 0.0125 + 0.0093 + 0.0083) and price.catalog_available
    (home / ".sky" / "catalogs" / "v8" / "azure" / "vms.csv").unlink()
    partial = region_prices(load_fleet(write_fleet(tmp_path, MIXED)))
    assert partial.per_hour is None and partial.regions[2].unknown == "no catalog"
    assert partial.regions[1].per_node_hour == 0.0093 and not partial.catalog_available


def test_our_catalog_reading_agrees_with_skypilots(home: Path, tmp_path: Path) -> None:
    """The real sky.catalog, offline in a sandbox, on the same files: same paths, prices and validity."""
    seed_catalogs(home)
    asks = [("gcp", "e2-medium", True, "us-central1"), ("gcp", "n2-standard-2", False, "us-central1"),
            ("azure", "Standard_B2s", True, "eastus"), ("azure", "Standard_D2s_v5", False, "eastus")]
    body = f"""
from sky import catalog
from sky.catalog import common
result = {{"paths": [common.get_catalog_path(c + "/vms.csv") for c in ("gcp", "azure")], "prices": [],
          "valid": [], "invalid": []}}
for cloud, kind, spot, region in {asks!r}:
    result["prices"].append(catalog.get_hourly_cost(kind, spot, region, None, clouds=cloud))
for cloud, region, zone in [("gcp", "us-central1", "us-central1-a"), ("azure", "eastus", None)]:
    result["valid"].append(list(catalog.validate_region_zone(region, zone, clouds=cloud)))
for cloud, region, zone in [("gcp", "us-central1", "us-central1-f"), ("gcp", "europe-west1", None),
                            ("azure", "eastus", "1"), ("azure", "westus2", None)]:
    try:
        catalog.validate_region_zone(region, zone, clouds=cloud)
        result["invalid"].append("accepted")
    except ValueError as exc:
        result["invalid"].append(str(exc).splitlines()[0])
"""
    theirs = run_probe(home, body)
    assert [Path(p) for p in theirs["paths"]] == [catalog_file(CloudName.GCP), catalog_file(CloudName.AZURE)]
    ours = []
    for index, (cloud, kind, spot, region) in enumerate(asks):
        directory = tmp_path / f"ask{index}"
        directory.mkdir()
        fleet = load_fleet(write_fleet(directory, {region: {"cloud": cloud, "count": 1, "instance_type": kind}},
                                       {"spot": spot}))
        ours.append(region_prices(fleet).regions[0].per_node_hour)
    assert ours == pytest.approx(theirs["prices"])
    assert theirs["valid"] == [["us-central1", "us-central1-a"], ["eastus", None]]
    # Everything SkyPilot refuses, the fleet model or the catalog check refuses first.
    assert "accepted" not in theirs["invalid"], theirs["invalid"]
    assert theirs["invalid"][2] == "Azure does not support zones."


def test_plan_shows_each_clusters_cloud_and_refuses_what_a_catalog_does_not_offer(home: Path, tmp_path: Path) -> None:
    seed_catalogs(home)
    path = write_fleet(tmp_path, MIXED)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SKYPILOT_", "SKY_"))} | {"HOME": str(home)}
    done = subprocess.run([sys.executable, str(REPO / "deploy.py"), "-f", str(path), "plan", "-o", "json"],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    clusters = {c["cluster"]: c for c in plan["clusters"]}
    assert {name: c["cloud"] for name, c in clusters.items()} == {
        "multi-us-east-1": "aws", "multi-us-central1": "gcp", "multi-eastus": "azure"}
    assert "infra: gcp/us-central1/us-central1-b" in clusters["multi-us-central1"]["task"]
    assert plan["fleet_price"] == "$0.0426/h"
    too_big = {"cloud": "gcp", "count": 1, "instance_type": "n2-highcpu-96"}
    bad = write_fleet(tmp_path, {**MIXED, "us-central1": too_big})
    refused = subprocess.run([sys.executable, str(REPO / "deploy.py"), "-f", str(bad), "plan"],
                             capture_output=True, text=True, env=env, timeout=300, check=False)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.strip().splitlines()[-1].startswith(
        "error: regions.us-central1: instance type 'n2-highcpu-96' is not offered"), refused.stderr


def test_only_a_launch_is_held_to_the_catalogs_and_down_never_is(home: Path, tmp_path: Path) -> None:
    from fleetdeploy.providers.skypilot.provider import SkyPilotProvider

    seed_catalogs(home)
    not_offered = {"cloud": "gcp", "count": 1, "instance_type": "n2-highmem-2"}
    path = write_fleet(tmp_path, {**MIXED, "us-central1": not_offered})
    provider = SkyPilotProvider(load_fleet(path), tmp_path / "state", sdk_loader=lambda: None)
    provider.preflight()  # configure, down: where nodes would go is not their concern
    with pytest.raises(InputError, match="instance type 'n2-highmem-2' is not offered"):
        provider.preflight(launching=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SKYPILOT_", "SKY_"))} | {"HOME": str(home)}
    up = subprocess.run([sys.executable, str(REPO / "deploy.py"), "-f", str(path), "up"], capture_output=True,
                        text=True, env=env, timeout=300, check=False)
    assert up.returncode == 2 and "n2-highmem-2" in up.stderr.splitlines()[0], up.stderr
