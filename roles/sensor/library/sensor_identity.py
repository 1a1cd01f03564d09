#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Ansible module: deterministic sensor identity for this node (stdlib only, runs on the node)."""

from __future__ import annotations

import datetime
import hashlib
import urllib.error
import urllib.request
from typing import Any, Dict, List, Optional, Tuple

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
---
module: sensor_identity
short_description: Build the sensor simulator's identity from this node's instance id
description:
  - Finds the node's instance id (EC2 IMDSv2, else the given id, else /etc/machine-id) and returns the
    identity document for the sensor simulator. Every value is a pure function of the instance id, so the
    same node always gets byte-identical identity JSON.
  - Changes nothing on the node; it only reads.
options:
  instance_id:
    description: Instance id to use when IMDS is disabled or does not answer (e.g. the inventory's fleet_instance_id).
    type: str
    default: ''
  imds_enabled:
    description: Ask the EC2 instance metadata service (IMDSv2) first.
    type: bool
    default: true
  imds_url:
    description: Base URL of the instance metadata service.
    type: str
    default: http://169.254.169.254
  imds_timeout:
    description: Seconds to wait for each IMDS request.
    type: float
    default: 1.0
  machine_id_path:
    description: Last-resort source of a stable id.
    type: path
    default: /etc/machine-id
author: fleet deployer
"""

EXAMPLES = r"""
- name: Compute the sensor identity
  sensor_identity:
    instance_id: "{{ fleet_instance_id | default('') }}"
    imds_enabled: false
  register: identity
"""

RETURN = r"""
identity:
  description: The identity document (simulator schema).
  returned: always
  type: dict
instance_id:
  description: The instance id the identity was built from.
  returned: always
  type: str
instance_id_source:
  description: Where the instance id came from (imds, parameter, machine-id).
  returned: always
  type: str
"""

# Real cities: (city, state/region, latitude, longitude, IANA timezone). The simulator only accepts an
# IANA name it can resolve (unknown names silently become +00:00), so every entry is a real zone.
CITIES: Tuple[Tuple[str, str, float, float, str], ...] = (
    ("New York", "NY", 40.7128, -74.0060, "America/New_York"),
    ("Los Angeles", "CA", 34.0522, -118.2437, "America/Los_Angeles"),
    ("Chicago", "IL", 41.8781, -87.6298, "America/Chicago"),
    ("Houston", "TX", 29.7604, -95.3698, "America/Chicago"),
    ("Phoenix", "AZ", 33.4484, -112.0740, "America/Phoenix"),
    ("Philadelphia", "PA", 39.9526, -75.1652, "America/New_York"),
    ("San Antonio", "TX", 29.4241, -98.4936, "America/Chicago"),
    ("San Diego", "CA", 32.7157, -117.1611, "America/Los_Angeles"),
    ("Dallas", "TX", 32.7767, -96.7970, "America/Chicago"),
    ("Seattle", "WA", 47.6062, -122.3321, "America/Los_Angeles"),
    ("Denver", "CO", 39.7392, -104.9903, "America/Denver"),
    ("Boston", "MA", 42.3601, -71.0589, "America/New_York"),
    ("Miami", "FL", 25.7617, -80.1918, "America/New_York"),
    ("Atlanta", "GA", 33.7490, -84.3880, "America/New_York"),
    ("Minneapolis", "MN", 44.9778, -93.2650, "America/Chicago"),
    ("Portland", "OR", 45.5152, -122.6784, "America/Los_Angeles"),
    ("Detroit", "MI", 42.3314, -83.0458, "America/Detroit"),
    ("Anchorage", "AK", 61.2181, -149.9003, "America/Anchorage"),
    ("Honolulu", "HI", 21.3069, -157.8583, "Pacific/Honolulu"),
    ("Toronto", "ON", 43.6532, -79.3832, "America/Toronto"),
    ("Vancouver", "BC", 49.2827, -123.1207, "America/Vancouver"),
    ("Mexico City", "CDMX", 19.4326, -99.1332, "America/Mexico_City"),
    ("Sao Paulo", "SP", -23.5505, -46.6333, "America/Sao_Paulo"),
    ("Buenos Aires", "CABA", -34.6037, -58.3816, "America/Argentina/Buenos_Aires"),
    ("London", "England", 51.5074, -0.1278, "Europe/London"),
    ("Dublin", "Leinster", 53.3498, -6.2603, "Europe/Dublin"),
    ("Paris", "Ile-de-France", 48.8566, 2.3522, "Europe/Paris"),
    ("Frankfurt", "Hesse", 50.1109, 8.6821, "Europe/Berlin"),
    ("Stockholm", "Stockholm", 59.3293, 18.0686, "Europe/Stockholm"),
    ("Milan", "Lombardy", 45.4642, 9.1900, "Europe/Rome"),
    ("Madrid", "Madrid", 40.4168, -3.7038, "Europe/Madrid"),
    ("Zurich", "Zurich", 47.3769, 8.5417, "Europe/Zurich"),
    ("Tokyo", "Tokyo", 35.6762, 139.6503, "Asia/Tokyo"),
    ("Osaka", "Osaka", 34.6937, 135.5023, "Asia/Tokyo"),
    ("Seoul", "Seoul", 37.5665, 126.9780, "Asia/Seoul"),
    ("Singapore", "Singapore", 1.3521, 103.8198, "Asia/Singapore"),
    ("Mumbai", "Maharashtra", 19.0760, 72.8777, "Asia/Kolkata"),
    ("Sydney", "NSW", -33.8688, 151.2093, "Australia/Sydney"),
    ("Melbourne", "VIC", -37.8136, 144.9631, "Australia/Melbourne"),
    ("Cape Town", "Western Cape", -33.9249, 18.4241, "Africa/Johannesburg"),
)

# Manufacturer -> models. Values are free strings for the simulator; realistic names keep dashboards readable.
MANUFACTURERS: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    ("SensorTech", ("EnvMonitor-3000", "EnvMonitor-5000", "TempVibe-1000")),
    ("EnvMonitors", ("EnvMonitor-3000", "EnvMonitor-4000")),
    ("IoTPro", ("TempSensor Pro", "TempVibe-2000")),
    ("WeatherCorp", ("WeatherStation Pro", "WeatherStation Lite")),
)

DEPLOYMENT_TYPES: Tuple[str, ...] = ("stationary_unit", "rooftop", "pole_mounted", "wall_mounted", "ground_station")
SENSOR_TYPES: Tuple[str, ...] = ("environmental_monitoring", "industrial_vibration", "air_quality", "weather")
STREETS: Tuple[str, ...] = ("Main St", "Oak Ave", "Harbor Rd", "Station Rd", "Market St", "Park Ln", "Mill Rd")

# Seed-derived dates are offsets from this fixed epoch, never from "today", so reruns are identical.
DATE_EPOCH = datetime.date(2020, 1, 1)
# The simulator's own sensor ids look like CITY_XXXXXX with consonants and digits; keep that shape.
ID_ALPHABET = "BCDFGHJKLMNPQRSTVWXYZ0123456789"
IMDS_TOKEN_TTL_SECONDS = "60"


def _draw(instance_id: str, label: str) -> int:
    """A 64-bit number that depends only on the instance id and what it is for.

    Hashing per label (instead of one shared PRNG stream) keeps each field stable even if fields are added later,
    and does not depend on the node's Python version's `random` implementation.
    """
    digest = hashlib.sha256("{0}:{1}".format(label, instance_id).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def _fraction(instance_id: str, label: str) -> float:
    return _draw(instance_id, label) / float(1 << 64)


def _pick(instance_id: str, label: str, options: Tuple[Any, ...]) -> Any:
    return options[_draw(instance_id, label) % len(options)]


def _sensor_id(instance_id: str, city: str) -> str:
    prefix = "".join(c.upper() for c in city if c.isalpha())[:4]
    value = _draw(instance_id, "sensor_id")
    suffix = []
    for _ in range(6):
        value, index = divmod(value, len(ID_ALPHABET))
        suffix.append(ID_ALPHABET[index])
    return "{0}_{1}".format(prefix, "".join(suffix))


def generation_seed(instance_id: str) -> int:
    # 48 bits: an int every JSON reader (even JavaScript's doubles) keeps exactly.
    return _draw(instance_id, "seed") >> 16


def build_identity(instance_id: str) -> Dict[str, Any]:
    """The simulator identity document: a pure function of the instance id."""
    if not instance_id:
        raise ValueError("instance_id must not be empty")
    city, state, latitude, longitude, timezone = _pick(instance_id, "city", CITIES)
    # Spread nodes of one city over ~5 km so maps don't stack them on one point.
    lat = round(latitude + (_fraction(instance_id, "lat") - 0.5) * 0.1, 6)
    lon = round(longitude + (_fraction(instance_id, "lon") - 0.5) * 0.1, 6)
    manufacturer, models = _pick(instance_id, "manufacturer", MANUFACTURERS)
    model = _pick(instance_id, "model", models)
    firmware = "{0}.{1}.{2}".format(
        1 + _draw(instance_id, "fw_major") % 4,
        _draw(instance_id, "fw_minor") % 10,
        _draw(instance_id, "fw_patch") % 20,
    )
    manufactured = DATE_EPOCH + datetime.timedelta(days=_draw(instance_id, "manufactured") % 1461)
    installed = manufactured + datetime.timedelta(days=30 + _draw(instance_id, "installed") % 336)
    generated = datetime.datetime.combine(installed, datetime.time(), tzinfo=datetime.timezone.utc)
    generated += datetime.timedelta(seconds=_draw(instance_id, "generated") % 86400)
    serial = "{0}-{1}-{2:08X}".format(
        "".join(c for c in manufacturer if c.isupper())[:3], manufactured.year, _draw(instance_id, "serial") >> 32
    )
    house_number = 1 + _draw(instance_id, "house") % 999
    return {
        "sensor_id": _sensor_id(instance_id, city),
        "location": {
            "city": city,
            "state": state,
            "coordinates": {"latitude": max(-90.0, min(90.0, lat)), "longitude": max(-180.0, min(180.0, lon))},
            "timezone": timezone,
            "address": "{0} {1}, {2}, {3}".format(house_number, _pick(instance_id, "street", STREETS), city, state),
        },
        "device_info": {
            "manufacturer": manufacturer,
            "model": model,
            "firmware_version": firmware,
            "serial_number": serial,
            "manufacture_date": manufactured.isoformat(),
        },
        "deployment": {
            "deployment_type": _pick(instance_id, "deployment_type", DEPLOYMENT_TYPES),
            "installation_date": installed.isoformat(),
            "height_meters": round(1.5 + _fraction(instance_id, "height") * 28.5, 1),
            "orientation_degrees": _draw(instance_id, "orientation") % 360,
        },
        "metadata": {
            "instance_id": instance_id,
            "identity_generation_timestamp": generated.isoformat(),
            "generation_seed": generation_seed(instance_id),
            "sensor_type": _pick(instance_id, "sensor_type", SENSOR_TYPES),
        },
    }


def imds_instance_id(base_url: str, timeout: float) -> Optional[str]:
    """The EC2 instance id via IMDSv2 (token PUT, then GET), or None when no IMDS answers."""
    base = base_url.rstrip("/")
    try:
        token_request = urllib.request.Request(
            base + "/latest/api/token",
            method="PUT",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": IMDS_TOKEN_TTL_SECONDS},
        )
        with urllib.request.urlopen(token_request, timeout=timeout) as response:
            token = response.read().decode("ascii").strip()
        id_request = urllib.request.Request(
            base + "/latest/meta-data/instance-id", headers={"X-aws-ec2-metadata-token": token}
        )
        with urllib.request.urlopen(id_request, timeout=timeout) as response:
            value = response.read().decode("ascii").strip()
    except (urllib.error.URLError, OSError, UnicodeDecodeError, ValueError):
        return None
    return value or None


def machine_id(path: str) -> Optional[str]:
    try:
        with open(path, encoding="ascii") as handle:
            value = handle.read().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return value or None


def resolve_instance_id(
    given: str, imds_enabled: bool, imds_url: str, imds_timeout: float, machine_id_path: str
) -> Tuple[Optional[str], str]:
    """(instance id, source): IMDSv2 first, then the given id, then the machine id."""
    candidates: List[Tuple[str, Any]] = []
    if imds_enabled:
        candidates.append(("imds", lambda: imds_instance_id(imds_url, imds_timeout)))
    candidates.append(("parameter", lambda: given.strip() or None))
    candidates.append(("machine-id", lambda: machine_id(machine_id_path)))
    for source, finder in candidates:
        value = finder()
        if value:
            return value, source
    return None, "none"


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "instance_id": {"type": "str", "default": ""},
            "imds_enabled": {"type": "bool", "default": True},
            "imds_url": {"type": "str", "default": "http://169.254.169.254"},
            "imds_timeout": {"type": "float", "default": 1.0},
            "machine_id_path": {"type": "path", "default": "/etc/machine-id"},
        },
        supports_check_mode=True,
    )
    params = module.params
    instance_id, source = resolve_instance_id(
        params["instance_id"] or "",
        params["imds_enabled"],
        params["imds_url"],
        params["imds_timeout"],
        params["machine_id_path"],
    )
    if not instance_id:
        module.fail_json(msg="no instance id: IMDS did not answer, none was given and the machine id is missing")
    module.exit_json(
        changed=False, identity=build_identity(instance_id), instance_id=instance_id, instance_id_source=source
    )


if __name__ == "__main__":
    main()
