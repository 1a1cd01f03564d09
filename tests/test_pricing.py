"""Prices come from a catalog file in SkyPilot's own format; without one they are unknown, with no download.

Everything that imports sky runs in a subprocess with a throw-away HOME, no AWS credentials and a socket guard
that refuses any address but the loopback one (facts.md: SkyPilot offline).
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

from fleetdeploy.fleet.model import Fleet, load_fleet
from fleetdeploy.providers.base import format_price
from fleetdeploy.providers.skypilot.pricing import FleetPrice, Unknown, catalog_file, region_prices
from fleetdeploy.providers.skypilot.task import Market

REPO = Path(__file__).resolve().parents[1]
HEADER = (
    "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,Region,"
    "AvailabilityZone,Arch,LocalDiskType,NVMeSupported,LocalDiskSize,LocalDiskCount,MaximumEfaInterfaces"
)
# (type, on-demand, spot, region, zone id): one row per zone, as SkyPilot publishes it. An empty spot cell is
# a zone without spot; c5.large has no spot offer in eu-west-1 at all.
ROWS = [
    ("t3.medium", "0.0416", "0.0150", "us-east-1", "use1-az1"),
    ("t3.medium", "0.0416", "0.0125", "us-east-1", "use1-az2"),
    ("t3.medium", "0.0416", "", "us-east-1", "use1-az4"),
    ("t3.medium", "0.0456", "0.0101", "us-west-2", "usw2-az1"),
    ("t3.large", "0.0912", "0.0310", "eu-west-1", "euw1-az1"),
    ("t3.large", "0.0912", "0.0290", "eu-west-1", "euw1-az2"),
    ("c5.large", "0.0960", "", "eu-west-1", "euw1-az1"),
]
PROBE = r"""
import json, socket, sys
attempts = []
_connect, _resolve = socket.socket.connect, socket.getaddrinfo
def connect(self, address):
    host = address[0] if isinstance(address, tuple) else address
    if not (isinstance(host, str) and (host.startswith(("127.", "/")) or host == "::1")):
        attempts.append(str(address))
        raise OSError("network refused by the test")
    return _connect(self, address)
def resolve(host, *args, **kwargs):
    if host not in (None, "localhost", "127.0.0.1", "::1"):
        attempts.append(f"resolve {host}")
        raise socket.gaierror("network refused by the test")
    return _resolve(host, *args, **kwargs)
socket.socket.connect, socket.getaddrinfo = connect, resolve
"""


def catalog_text(rows: list[tuple[str, str, str, str, str]] = ROWS) -> str:
    lines = [
        f"{kind},,,2.0,4.0,,{price},{spot},{region},{zone},x86_64,,,,,0"
        for kind, price, spot, region, zone in rows
    ]
    return "\n".join([HEADER, *lines]) + "\n"


def place_catalog(home: Path, content: bytes | None = None) -> Path:
    path = home / ".sky" / "catalogs" / "v8" / "aws" / "vms.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(catalog_text().encode() if content is None else content)
    return path


def write_fleet(directory: Path, regions: dict[str, Any], defaults: dict[str, Any] | None = None) -> Path:
    token = directory / "token"
    token.write_text("tok\n")
    token.chmod(0o600)
    data = {
        "name": "demo",
        "regions": regions,
        "defaults": defaults or {},
        "orchestrator": {"endpoint": "orch.example.com", "token_file": "token"},
        "sensor": {"version": "1.0.0"},
    }
    path = directory / "fleet.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))  # keeps the regions' order
    return path


@pytest.fixture()
def fleet(tmp_path: Path) -> Fleet:
    regions = {
        "us-east-1": {"count": 3, "zones": ["us-east-1b", "us-east-1a"]},
        "eu-west-1": {"count": 2, "instance_types": ["t3.large", "c5.large"]},
    }
    return load_fleet(write_fleet(tmp_path, regions, {"on_demand_fallback": True}))


def sandbox_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SKYPILOT_", "SKY_"))}
    return env | {
        "HOME": str(home),
        "SKYPILOT_DISABLE_USAGE_COLLECTION": "1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "PYTHONPATH": str(REPO),
    }


def run_probe(home: Path, body: str) -> Any:
    script = PROBE + body + "\nprint(json.dumps({'result': result, 'attempts': attempts}))\n"
    done = subprocess.run(
        [sys.executable, "-c", script], env=sandbox_env(home), capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["attempts"] == [], out["attempts"]
    return out["result"]


def test_spot_prices_per_node_region_and_fleet(home: Path, fleet: Fleet) -> None:
    place_catalog(home)
    price = region_prices(fleet)
    assert price.catalog_available and price.unknown is None
    east, west = price.regions
    # Cheapest zone of the region (zones are not priced by name), the first candidate's market: spot.
    assert (east.region, east.nodes, east.instance_type, east.market) == ("us-east-1", 3, "t3.medium", Market.SPOT)
    assert (east.per_node_hour, east.per_region_hour, east.unknown) == (0.0125, 0.0375, None)
    assert (west.instance_type, west.per_node_hour, west.per_region_hour) == ("t3.large", 0.029, 0.058)
    assert price.per_hour == pytest.approx(0.0955)
    assert format_price(east.per_region_hour, east.unknown) == "$0.0375/h"
    assert format_price(price.per_hour, price.unknown) == "$0.0955/h"


def test_on_demand_prices(home: Path, tmp_path: Path) -> None:
    place_catalog(home)
    regions = {"us-east-1": {"count": 2}, "us-west-2": {"count": 1}}
    price = region_prices(load_fleet(write_fleet(tmp_path, regions, {"spot": False})))
    assert [(r.market, r.per_node_hour, r.per_region_hour) for r in price.regions] == [
        (Market.ON_DEMAND, 0.0416, 0.0832),
        (Market.ON_DEMAND, 0.0456, 0.0456),
    ]
    assert price.per_hour == pytest.approx(0.1288)


def test_type_not_in_catalog_leaves_the_fleet_total_unknown(home: Path, tmp_path: Path) -> None:
    place_catalog(home)
    regions = {"us-east-1": {"count": 1}, "eu-west-1": {"count": 1, "instance_type": "c5.large"}}
    price = region_prices(load_fleet(write_fleet(tmp_path, regions)))
    east, west = price.regions
    assert east.per_node_hour == 0.0125 and east.unknown is None
    # c5.large is in the catalog for eu-west-1, but has no spot price there.
    assert (west.per_node_hour, west.per_region_hour, west.unknown) == (None, None, Unknown.NOT_IN_CATALOG)
    assert price.catalog_available and price.per_hour is None and price.unknown is Unknown.NOT_IN_CATALOG
    assert format_price(west.per_region_hour, west.unknown) == "price unknown (not in catalog)"
    assert format_price(price.per_hour, price.unknown) == "price unknown (not in catalog)"


def test_no_catalog(home: Path, fleet: Fleet) -> None:
    price = region_prices(fleet)
    assert not price.catalog_available and price.per_hour is None and price.unknown is Unknown.NO_CATALOG
    assert all(r.per_node_hour is None and r.unknown is Unknown.NO_CATALOG for r in price.regions)
    assert format_price(price.per_hour, price.unknown) == "price unknown (no catalog)"
    assert not (home / ".sky").exists()  # nothing fetched, nothing created


@pytest.mark.parametrize(
    "content",
    [b"not,a,catalog\n1,2,3\n", b"\xff\xfe\x00\x81garbage", b""],
    ids=["other-columns", "binary", "empty"],
)
def test_unreadable_catalog_is_unknown_not_a_failure(home: Path, fleet: Fleet, content: bytes) -> None:
    place_catalog(home, content)
    price = region_prices(fleet)
    assert not price.catalog_available and price.unknown is Unknown.UNREADABLE
    assert format_price(price.per_hour, price.unknown) == "price unknown (catalog unreadable)"


def test_runtime_dir_overrides_home(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKY_RUNTIME_DIR", str(tmp_path / "runtime"))
    assert catalog_file() == tmp_path / "runtime" / ".sky" / "catalogs" / "v8" / "aws" / "vms.csv"


@pytest.mark.parametrize("with_catalog", [False, True], ids=["no-catalog", "catalog"])
def test_pricing_never_imports_sky(home: Path, fleet: Fleet, tmp_path: Path, with_catalog: bool) -> None:
    if with_catalog:
        place_catalog(home)
    body = f"""
from fleetdeploy.fleet.model import load_fleet
from fleetdeploy.providers.base import format_price
from fleetdeploy.providers.skypilot.pricing import region_prices
price = region_prices(load_fleet({str(tmp_path / "fleet.yaml")!r}))
result = [format_price(price.per_hour, price.unknown), sorted(m for m in sys.modules if m.split(".")[0] == "sky")]
"""
    text, sky_modules = run_probe(home, body)
    assert text == ("$0.0955/h" if with_catalog else "price unknown (no catalog)")
    assert sky_modules == []


def test_same_path_and_prices_as_skypilots_catalog(home: Path, fleet: Fleet) -> None:
    """The real sky.catalog, offline in a sandbox, reads the same file and gives the same prices."""
    place_catalog(home)
    asks = [
        ("t3.medium", True, "us-east-1"),
        ("t3.medium", False, "us-east-1"),
        ("t3.medium", True, "us-west-2"),
        ("t3.large", True, "eu-west-1"),
        ("t3.large", False, "eu-west-1"),
    ]
    body = f"""
from sky import catalog
from sky.catalog import common
result = [common.get_catalog_path("aws/vms.csv")]
for kind, spot, region in {asks!r}:
    result.append(catalog.get_hourly_cost(kind, spot, region, None, clouds="aws"))
"""
    path, *theirs = run_probe(home, body)
    assert Path(path) == catalog_file()
    ours = [_ours(home, kind, spot, region) for kind, spot, region in asks]
    assert ours == pytest.approx(theirs)


def _ours(home: Path, kind: str, spot: bool, region: str) -> float | None:
    directory = home.parent / f"fleet-{kind}-{spot}-{region}"
    directory.mkdir()
    path = write_fleet(directory, {region: {"count": 1, "instance_type": kind}}, {"spot": spot})
    price: FleetPrice = region_prices(load_fleet(path))
    return price.regions[0].per_node_hour
