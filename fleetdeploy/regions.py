"""Known AWS region names and the zone-name check used by the fleet-file model."""

from __future__ import annotations

import re

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


def is_known_region(name: str) -> bool:
    """True when `name` is a commercial AWS region name."""
    return name in AWS_REGIONS


def zone_belongs_to(zone: str, region: str) -> bool:
    """True when `zone` is an availability zone or local zone name of `region`."""
    if not zone.startswith(region):
        return False
    return _ZONE_SUFFIX.fullmatch(zone[len(region) :]) is not None
