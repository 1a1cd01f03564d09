"""The clouds a fleet may use through SkyPilot, and what is known about each without asking it: region names,
the shape of zone and instance-type names, and the defaults a region of that cloud gets.

These lists are the fallback. When SkyPilot's catalog of a cloud is on disk, the skypilot provider checks the
fleet against it as well (providers/skypilot/catalog.py), before any cloud call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class CloudName(StrEnum):
    """The fleet file's spelling, which is also SkyPilot's in `infra: <cloud>/<region>[/<zone>]`."""

    AWS = "aws"
    GCP = "gcp"
    AZURE = "azure"


# Commercial AWS regions as of 2025 (GovCloud and China are separate partitions SkyPilot does not target).
_AWS_REGIONS = """
af-south-1 ap-east-1 ap-east-2 ap-northeast-1 ap-northeast-2 ap-northeast-3 ap-south-1 ap-south-2 ap-southeast-1
ap-southeast-2 ap-southeast-3 ap-southeast-4 ap-southeast-5 ap-southeast-6 ap-southeast-7 ca-central-1 ca-west-1
eu-central-1 eu-central-2 eu-north-1 eu-south-1 eu-south-2 eu-west-1 eu-west-2 eu-west-3 il-central-1 me-central-1
me-south-1 mx-central-1 sa-east-1 us-east-1 us-east-2 us-west-1 us-west-2
"""
# Google Cloud regions as of 2025 (cloud.google.com/compute/docs/regions-zones).
_GCP_REGIONS = """
africa-south1 asia-east1 asia-east2 asia-northeast1 asia-northeast2 asia-northeast3 asia-south1 asia-south2
asia-southeast1 asia-southeast2 australia-southeast1 australia-southeast2 europe-central2 europe-north1
europe-north2 europe-southwest1 europe-west1 europe-west2 europe-west3 europe-west4 europe-west6 europe-west8
europe-west9 europe-west10 europe-west12 me-central1 me-central2 me-west1 northamerica-northeast1
northamerica-northeast2 northamerica-south1 southamerica-east1 southamerica-west1 us-central1 us-east1 us-east4
us-east5 us-south1 us-west1 us-west2 us-west3 us-west4
"""
# Azure public regions with virtual machines as of 2025 (`az account list-locations`, physical regions).
_AZURE_REGIONS = """
australiacentral australiacentral2 australiaeast australiasoutheast austriaeast belgiumcentral brazilsouth
brazilsoutheast canadacentral canadaeast centralindia centralus chilecentral denmarkeast eastasia eastus eastus2
francecentral francesouth germanynorth germanywestcentral indonesiacentral israelcentral italynorth japaneast
japanwest jioindiacentral jioindiawest koreacentral koreasouth malaysiawest mexicocentral newzealandnorth
northcentralus northeurope norwayeast norwaywest polandcentral qatarcentral southafricanorth southafricawest
southcentralus southeastasia southindia spaincentral swedencentral swedensouth switzerlandnorth switzerlandwest
uaecentral uaenorth uksouth ukwest westcentralus westeurope westindia westus westus2 westus3
"""


@dataclass(frozen=True)
class CloudRules:
    """What a region of one cloud may say, and what it gets when it says nothing."""

    name: CloudName
    title: str  # how people (and SkyPilot's messages) write the cloud's name
    regions: frozenset[str]
    instance_type_shape: re.Pattern[str]
    instance_type_example: str  # the tail of "is not <this>"
    default_instance_type: str  # 2 vCPUs, 4 GiB: the sensor and a small Bacalhau job fit
    default_disk_gb: int
    zone_suffix: re.Pattern[str] | None  # None: SkyPilot places this cloud's nodes by region only
    ssh_user_hint: str  # the login user SkyPilot's images use (the status record says the real one)

    def is_region(self, name: str) -> bool:
        return name in self.regions

    def is_zone_of(self, zone: str, region: str) -> bool:
        if self.zone_suffix is None or not zone.startswith(region):
            return False
        return self.zone_suffix.fullmatch(zone[len(region):]) is not None

    def is_instance_type(self, name: str) -> bool:
        return self.instance_type_shape.fullmatch(name) is not None


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


CLOUDS: dict[CloudName, CloudRules] = {
    CloudName.AWS: CloudRules(
        CloudName.AWS, "AWS", _names(_AWS_REGIONS),
        # family.size; availability zones are the region plus a letter, local zones add a metro code and number.
        re.compile(r"[a-z][a-z0-9-]*\.[a-z0-9]+"), "an EC2 instance type (e.g. t3.medium)",
        "t3.medium", 30, re.compile(r"(?:[a-z]|-[a-z]{3}-[0-9]+[a-z])"), "ubuntu",
    ),
    CloudName.GCP: CloudRules(
        CloudName.GCP, "GCP", _names(_GCP_REGIONS),
        # family-class[-size] (e2-medium, n2-standard-2, n2-custom-2-4096); zones are region-letter.
        re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)+"), "a GCP machine type (e.g. e2-medium)",
        "e2-medium", 30, re.compile(r"-[a-z]"), "gcpuser",
    ),
    CloudName.AZURE: CloudRules(
        CloudName.AZURE, "Azure", _names(_AZURE_REGIONS),
        # SkyPilot 0.14.1's Azure catalog refuses zones ("Azure does not support zones").
        re.compile(r"(?:Standard|Basic)_[A-Za-z0-9_]+"), "an Azure VM size (e.g. Standard_B2s)",
        "Standard_B2s", 30, None, "azureuser",
    ),
}


def rules(cloud: CloudName | str) -> CloudRules:
    return CLOUDS[CloudName(cloud)]


def clouds_of_region(name: str) -> list[CloudName]:
    """The clouds that have a region by this name (none of the three share one today)."""
    return [cloud for cloud, spec in CLOUDS.items() if spec.is_region(name)]
