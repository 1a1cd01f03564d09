"""The fleet checked against SkyPilot's own catalog of each cloud it uses, when that catalog is on disk.

The fleet model already checks names against the lists in fleet/clouds.py; a catalog knows more: which instance
types each region offers and (GCP) which zones it has. A cloud without a catalog on disk keeps the model's checks:
reading it through SkyPilot would download it, and nothing here may go online before a command is known valid.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from fleetdeploy.errors import InputError
from fleetdeploy.fleet.clouds import CloudName, rules
from fleetdeploy.fleet.model import Fleet
from fleetdeploy.providers.skypilot.pricing import catalog_file

# Azure's vms.csv has no AvailabilityZone column (fetch_azure.py's USEFUL_COLUMNS): zones are optional.
_COLUMNS = frozenset({"InstanceType", "Region"})


@dataclass
class CatalogView:
    """What one cloud's catalog offers, per region."""

    types: dict[str, set[str]] = field(default_factory=dict)  # region -> instance types
    zones: dict[str, set[str]] = field(default_factory=dict)  # region -> zone names (empty: not zone names)


def read_view(path: Path, zone_names: bool) -> CatalogView:
    """The regions, types and zones of a SkyPilot vms.csv; ValueError when the file is not one."""
    view = CatalogView()
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not _COLUMNS <= set(reader.fieldnames or ()):
            raise ValueError(f"{path}: not a SkyPilot catalog")
        for row in reader:
            region = (row["Region"] or "").lower()
            if not region or not row["InstanceType"]:
                continue
            view.types.setdefault(region, set()).add(row["InstanceType"])
            zone = row.get("AvailabilityZone") or ""
            if zone_names and zone:
                view.zones.setdefault(region, set()).add(zone)
    return view


def check_against_catalogs(fleet: Fleet) -> None:
    """InputError (one line, exit 2) for a region, zone or instance type a cloud's catalog does not offer."""
    for cloud in fleet.clouds:
        path = catalog_file(cloud)
        if not path.is_file():
            continue
        # The AWS catalog names zones by ID (use1-az1): the model's shape check is all there is offline.
        try:
            view = read_view(path, zone_names=cloud is not CloudName.AWS)
        except (OSError, UnicodeDecodeError, csv.Error, ValueError):
            continue  # an unreadable cache is SkyPilot's to refetch; the price shows as unknown
        _check_cloud(fleet, cloud, view, path)


def _check_cloud(fleet: Fleet, cloud: CloudName, view: CatalogView, path: Path) -> None:
    title = rules(cloud).title
    source = f"SkyPilot's {title} catalog ({path})"
    for region, spec in fleet.regions.items():
        if fleet.cloud_of(region) is not cloud:
            continue
        offered = view.types.get(region)
        if offered is None:
            raise InputError(f"regions.{region}: not a region in {source}")
        zones = list(spec.zones or ([spec.zone] if spec.zone else []))
        known_zones = view.zones.get(region)
        for zone in zones:
            if known_zones and zone not in known_zones:
                raise InputError(f"regions.{region}: zone '{zone}' is not in {source}")
        origin = "" if spec.own_instance_types else " (not set for the region: the default)"
        for instance_type in fleet.instance_types_of(region):
            if instance_type not in offered:
                raise InputError(f"regions.{region}: instance type '{instance_type}'{origin} is not offered in "
                                 f"{region} according to {source}")
