"""Hourly price of a fleet, per region and in total, from SkyPilot's catalog file of each cloud it uses (pure data,
offline).

The file is read directly rather than through `sky.catalog.get_hourly_cost`: importing sky costs seconds, and
its catalog access may go online (it downloads a missing file, refreshes one older than 7 hours, and with AWS
credentials asks AWS for the account's zone names). `plan` and `status` must stay quick and offline, so this
applies SkyPilot's rule to the same file: the cheapest row of the region for the instance type, SpotPrice or
Price. tests/test_pricing.py holds the two to the same answers with the real SDK.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from fleetdeploy.fleet.clouds import CloudName
from fleetdeploy.fleet.model import Fleet
from fleetdeploy.providers.skypilot.task import Market, candidates

# sky.skylet.constants.CATALOG_SCHEMA_VERSION of the pinned SkyPilot (0.14.1); a newer schema lives elsewhere.
CATALOG_SCHEMA_VERSION = "v8"
_COLUMNS = frozenset({"InstanceType", "Region", "Price", "SpotPrice"})

_Key = tuple[str, str, bool]  # (region, instance type, spot) within one cloud's catalog


class Unknown(StrEnum):
    """Why a price is missing; the value is what `price unknown (...)` shows."""

    NO_CATALOG = "no catalog"
    UNREADABLE = "catalog unreadable"
    NOT_IN_CATALOG = "not in catalog"


@dataclass(frozen=True)
class RegionPrice:
    """The price of one region's cluster as SkyPilot would first try it (its first candidate)."""

    region: str
    nodes: int
    cloud: CloudName
    instance_type: str
    market: Market
    per_node_hour: float | None
    per_region_hour: float | None
    unknown: Unknown | None  # set exactly when the prices are None


@dataclass(frozen=True)
class FleetPrice:
    """Every region's price (in the fleet file's order) and the fleet's; `catalog_available`: the file was read."""

    regions: tuple[RegionPrice, ...]
    per_hour: float | None  # None when any region's price is unknown: a partial sum would understate the cost
    unknown: Unknown | None
    catalog_available: bool  # every cloud's file was read


def catalog_file(cloud: CloudName = CloudName.AWS) -> Path:
    """Where SkyPilot keeps a cloud's catalog (sky.catalog.common.get_catalog_path('<cloud>/vms.csv'))."""
    root = os.path.expanduser(os.environ.get("SKY_RUNTIME_DIR", "~"))
    return Path(root, ".sky", "catalogs", CATALOG_SCHEMA_VERSION, str(cloud), "vms.csv")


def region_prices(fleet: Fleet) -> FleetPrice:
    """Prices of every region's first candidate and of the fleet; never fails, never goes online.

    Per region, not per zone: the AWS catalog keys zones by ID (use1-az1) and naming them (us-east-1a) needs AWS.
    """
    firsts = {region: candidates(fleet, region)[0] for region in fleet.regions}
    prices: dict[CloudName, dict[_Key, float]] = {}
    failures: dict[CloudName, Unknown] = {}
    for cloud in fleet.clouds:
        wanted = {(region, first.instance_type, first.spot) for region, first in firsts.items()
                  if first.cloud == cloud}
        path = catalog_file(cloud)
        if not path.is_file():
            failures[cloud] = Unknown.NO_CATALOG
            continue
        try:
            prices[cloud] = _read(path, wanted)
        except (OSError, UnicodeDecodeError, csv.Error, ValueError):
            failures[cloud] = Unknown.UNREADABLE
    rows = []
    for region, first in firsts.items():
        nodes = fleet.regions[region].count
        price = prices.get(first.cloud, {}).get((region, first.instance_type, first.spot))
        reason = None if price is not None else failures.get(first.cloud, Unknown.NOT_IN_CATALOG)
        total = None if price is None else round(nodes * price, 6)
        rows.append(RegionPrice(region, nodes, first.cloud, first.instance_type, first.market, price, total, reason))
    known = [row.per_region_hour for row in rows if row.per_region_hour is not None]
    missing = next((row.unknown for row in rows if row.unknown is not None), None)
    per_hour = round(sum(known), 6) if missing is None else None
    return FleetPrice(tuple(rows), per_hour, missing, not failures)


def _read(path: Path, wanted: set[_Key]) -> dict[_Key, float]:
    """The cheapest price of each wanted (region, type, spot) over the region's zones; ValueError if not a catalog."""
    cheapest: dict[_Key, float] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not _COLUMNS <= set(reader.fieldnames or ()):
            raise ValueError(f"{path}: not a SkyPilot catalog")
        for row in reader:
            for spot in (True, False):
                key = (row["Region"].lower(), row["InstanceType"], spot)
                if key in wanted:
                    price = _price(row["SpotPrice" if spot else "Price"])
                    if price is not None:
                        cheapest[key] = min(price, cheapest.get(key, price))
    return cheapest


def _price(cell: str | None) -> float | None:
    # Empty cells are SkyPilot's NaN: that market is not offered in that zone.
    try:
        value = float(cell or "nan")
    except ValueError:
        return None
    return None if math.isnan(value) or value < 0 else value
