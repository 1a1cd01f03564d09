"""Where and on what the nodes run: the fleet file's `regions.<name>` and `defaults` models (with their ordered
lists of alternatives) and the placement checks they use; each cloud's names are in clouds.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fleetdeploy.fleet.clouds import CloudName, clouds_of_region, rules
from fleetdeploy.fleet.fleetfile import KeyPathError as _At


def is_known_region(name: str) -> bool:
    """True when `name` is a region of one of the clouds (clouds.py)."""
    return bool(clouds_of_region(name))


def zone_belongs_to(zone: str, region: str, cloud: CloudName = CloudName.AWS) -> bool:
    """True when `zone` is a zone name of `region` in `cloud` (an AWS availability or local zone by default)."""
    return rules(cloud).is_zone_of(zone, region)


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


def check_zones(zones: Sequence[str], region: str, cloud: CloudName = CloudName.AWS) -> None:
    """Raise ValueError unless `zones` are distinct zones of `region` in `cloud`."""
    spec = rules(cloud)
    if spec.zone_suffix is None:
        raise ValueError(f"{spec.title} regions have no zones in SkyPilot: leave the key out")
    for zone in zones:
        if not spec.is_zone_of(zone, region):
            raise ValueError(f"zone '{zone}' is not in region {region}")
    check_choices(zones, "zone")


def check_choices_at(key: str, values: Sequence[str], what: str) -> None:
    """check_choices, its error at `key`."""
    try:
        check_choices(values, what)
    except ValueError as exc:
        raise _At(key, str(exc)) from None


def check_instance_types(key: str, values: Sequence[str], cloud: CloudName) -> None:
    """Raise KeyPathError (`key`, or `key.<index>` in a list) unless each value has the shape of `cloud`'s types."""
    spec = rules(cloud)
    for index, value in enumerate(values):
        if not spec.is_instance_type(value):
            at = key if key.endswith("instance_type") else f"{key}.{index}"
            raise _At(at, f"is not {spec.instance_type_example}")


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


CloudKey = Literal["aws", "gcp", "azure"]  # CloudName's values (strict models take no str for an enum)


class RegionSpec(StrictModel):
    count: int = Field(ge=1, le=1000)
    cloud: CloudKey | None = None  # None: the defaults' cloud
    # A singular key stands for a one-element list of its plural (older fleet files use them).
    zone: str | None = None
    zones: list[str] | None = None
    instance_type: str | None = None
    instance_types: list[str] | None = None
    image_id: str | None = None  # an AMI exists in one region only: a region's own wins over defaults.image_id

    _lists = field_validator("zones", "instance_types", mode="before")(_check_list)
    _image = field_validator("image_id")(_check_image_id)

    @model_validator(mode="after")
    def _one_form(self) -> RegionSpec:
        _either(self, "zone", "zones")
        _either(self, "instance_type", "instance_types")
        if self.instance_types is not None:
            check_choices_at("instance_types", self.instance_types, "instance type")
        return self

    @property
    def own_instance_types(self) -> list[str] | None:
        return self.instance_types or ([self.instance_type] if self.instance_type else None)

    def check_placement(self, region: str, cloud: CloudName) -> None:
        """Raise KeyPathError (`<region>...`) unless the region, its zones and its own instance types are
        `cloud`'s. Called by the fleet model: only it knows the region name (the mapping key) and its cloud.
        """
        spec = rules(cloud)
        if not spec.is_region(region):
            other = clouds_of_region(region)
            title = rules(other[0]).title if other else ""
            article = "an" if title[:1] in ("A", "E", "I", "O", "U") else "a"
            hint = f" (it is {article} {title} region: set cloud: {other[0]})" if other else ""
            raise _At(region, f"unknown {spec.title} region{hint}")
        key, zones = ("zone", [self.zone]) if self.zone is not None else ("zones", self.zones)
        if zones is not None:
            try:
                check_zones(zones, region, cloud)
            except ValueError as exc:
                raise _At(f"{region}.{key}", str(exc)) from None
        if self.instance_type is not None:
            check_instance_types(f"{region}.instance_type", [self.instance_type], cloud)
        if self.instance_types is not None:
            check_instance_types(f"{region}.instance_types", self.instance_types, cloud)


class DefaultsSpec(StrictModel):
    cloud: CloudKey = "aws"
    # The defaults' instance types are for regions of the defaults' cloud; a region of another cloud gets that
    # cloud's default (clouds.py) unless it names its own. None: the cloud's default.
    instance_type: str | None = None
    instance_types: list[str] | None = None
    spot: bool = True
    # Opt-in: on-demand costs about three times as much, so running out of spot capacity fails unless asked.
    on_demand_fallback: bool = False
    disk_size_gb: int = Field(default=30, ge=8, le=16384)
    image_id: str | None = None

    _lists = field_validator("instance_types", mode="before")(_check_list)
    _image = field_validator("image_id")(_check_image_id)

    @model_validator(mode="after")
    def _capacity(self) -> DefaultsSpec:
        _either(self, "instance_type", "instance_types")
        if self.instance_type is not None:
            check_instance_types("instance_type", [self.instance_type], CloudName(self.cloud))
        if self.instance_types is not None:
            check_instance_types("instance_types", self.instance_types, CloudName(self.cloud))
            check_choices_at("instance_types", self.instance_types, "instance type")
        if self.on_demand_fallback and not self.spot:
            raise _At("on_demand_fallback", "only used with spot: true (without spot every node is on-demand)")
        return self
