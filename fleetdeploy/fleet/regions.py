"""Where and on what the nodes run: AWS region, zone and instance-type names, and the fleet file's
`regions.<name>` and `defaults` models that use them (with their ordered lists of alternatives).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fleetdeploy.fleet.fleetfile import KeyPathError as _At

# Commercial AWS regions as of 2025 (GovCloud and China are separate partitions SkyPilot does not target).
AWS_REGIONS: frozenset[str] = frozenset(
    {
        "af-south-1",
        "ap-east-1",
        "ap-east-2",
        "ap-northeast-1",
        "ap-northeast-2",
        "ap-northeast-3",
        "ap-south-1",
        "ap-south-2",
        "ap-southeast-1",
        "ap-southeast-2",
        "ap-southeast-3",
        "ap-southeast-4",
        "ap-southeast-5",
        "ap-southeast-6",
        "ap-southeast-7",
        "ca-central-1",
        "ca-west-1",
        "eu-central-1",
        "eu-central-2",
        "eu-north-1",
        "eu-south-1",
        "eu-south-2",
        "eu-west-1",
        "eu-west-2",
        "eu-west-3",
        "il-central-1",
        "me-central-1",
        "me-south-1",
        "mx-central-1",
        "sa-east-1",
        "us-east-1",
        "us-east-2",
        "us-west-1",
        "us-west-2",
    }
)

# Availability zone: the region name plus one letter (us-east-1a). Local zones: region, a three-letter
# metro code, a number and a letter (us-east-1-bos-1a, us-west-2-lax-1b).
_ZONE_SUFFIX = re.compile(r"(?:[a-z]|-[a-z]{3}-[0-9]+[a-z])")
_INSTANCE_TYPE = re.compile(r"[a-z][a-z0-9-]*\.[a-z0-9]+")


def is_known_region(name: str) -> bool:
    """True when `name` is a commercial AWS region name."""
    return name in AWS_REGIONS


def zone_belongs_to(zone: str, region: str) -> bool:
    """True when `zone` is an availability zone or local zone name of `region`."""
    if not zone.startswith(region):
        return False
    return _ZONE_SUFFIX.fullmatch(zone[len(region) :]) is not None


def is_instance_type(name: str) -> bool:
    """True when `name` has the shape of an EC2 instance type (family.size); the catalog is not consulted."""
    return _INSTANCE_TYPE.fullmatch(name) is not None


def check_choices(values: Sequence[str], what: str) -> None:
    """Raise ValueError unless `values` is a non-empty list without repeats.

    The lists are alternatives SkyPilot tries in order: an empty one leaves nothing to try, and a repeat would
    only retry a place that has just failed.
    """
    if not values:
        raise ValueError(f"must list at least one {what} (or leave the key out)")
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"duplicate {what} '{value}'")
        seen.add(value)


def check_zones(zones: Sequence[str], region: str) -> None:
    """Raise ValueError unless `zones` are distinct zones of `region`."""
    for zone in zones:
        if not zone_belongs_to(zone, region):
            raise ValueError(f"zone '{zone}' is not in region {region}")
    check_choices(zones, "zone")


def _check_instance_type(value: str | None) -> str | None:
    if value is not None and not is_instance_type(value):
        raise ValueError("is not an EC2 instance type (e.g. t3.medium)")
    return value


def _check_instance_types(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    for index, value in enumerate(values):
        if not is_instance_type(value):
            raise _At(str(index), "is not an EC2 instance type (e.g. t3.medium)")
    check_choices(values, "instance type")
    return values


def _check_list(value: object) -> object:
    # Without this, `zones: us-east-1a` would get pydantic's own wording, unlike every other message.
    if value is not None and not isinstance(value, list):
        raise ValueError("must be a list ([first, second, ...]), tried in that order")
    return value


def _check_image_id(value: str | None) -> str | None:
    if value is not None and (not value or any(c.isspace() for c in value)):
        raise ValueError("must be a non-empty id without spaces (e.g. ami-0123456789abcdef0)")
    return value


def _either(model: BaseModel, single: str, plural: str) -> None:
    if single in model.model_fields_set and getattr(model, plural) is not None:
        raise _At(plural, f"give either {single} or {plural}, not both")


class StrictModel(BaseModel):
    """Base of every fleet-file model."""

    # strict: YAML already gives typed values; 'yes' -> True or 3.0 -> 3 would hide mistakes.
    model_config = ConfigDict(extra="forbid", strict=True)


class RegionSpec(StrictModel):
    count: int = Field(ge=1, le=1000)
    # A singular key stands for a one-element list of its plural (older fleet files use them).
    zone: str | None = None
    zones: list[str] | None = None
    instance_type: str | None = None
    instance_types: list[str] | None = None
    image_id: str | None = None  # an AMI exists in one region only: a region's own wins over defaults.image_id

    _lists = field_validator("zones", "instance_types", mode="before")(_check_list)
    _instance_type = field_validator("instance_type")(_check_instance_type)
    _instance_types = field_validator("instance_types")(_check_instance_types)
    _image = field_validator("image_id")(_check_image_id)

    @model_validator(mode="after")
    def _one_form(self) -> RegionSpec:
        _either(self, "zone", "zones")
        _either(self, "instance_type", "instance_types")
        return self

    def check_zones_of(self, region: str) -> None:
        """Raise KeyPathError (`<region>.zone[s]`) unless the zones are distinct zones of `region`.

        Called by the fleet model: only it knows the region name (the mapping key).
        """
        key, zones = ("zone", [self.zone]) if self.zone is not None else ("zones", self.zones)
        if zones is None:
            return
        try:
            check_zones(zones, region)
        except ValueError as exc:
            raise _At(f"{region}.{key}", str(exc)) from None


class DefaultsSpec(StrictModel):
    instance_type: str = "t3.medium"
    instance_types: list[str] | None = None
    spot: bool = True
    # Opt-in: on-demand costs about three times as much, so running out of spot capacity fails unless asked.
    on_demand_fallback: bool = False
    disk_size_gb: int = Field(default=30, ge=8, le=16384)
    image_id: str | None = None

    _lists = field_validator("instance_types", mode="before")(_check_list)
    _instance_type = field_validator("instance_type")(_check_instance_type)
    _instance_types = field_validator("instance_types")(_check_instance_types)

    _image = field_validator("image_id")(_check_image_id)

    @model_validator(mode="after")
    def _capacity(self) -> DefaultsSpec:
        _either(self, "instance_type", "instance_types")
        if self.on_demand_fallback and not self.spot:
            raise _At("on_demand_fallback", "only used with spot: true (without spot every node is on-demand)")
        return self
