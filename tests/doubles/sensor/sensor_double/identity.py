"""Identity JSON checks, following the simulator's pydantic model and its extra checks (facts.md: Sensor).

Stricter than upstream in two places, on purpose (tests must catch generator mistakes): `sensor_id` is required
(upstream invents a random one at every start) and an unknown timezone is an error (upstream silently uses UTC).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# semver.org's grammar: MAJOR.MINOR.PATCH with optional pre-release/build; "v1" or "2.1" fail like upstream.
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)


class IdentityError(Exception):
    """The simulator would refuse this identity (and exit 0: its quirk)."""


def _require_str(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        raise IdentityError(f"{where}.{key} is required and must be a non-empty string")
    return value


def _number(value: Any, where: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise IdentityError(f"{where} must be a number")
    if not low <= float(value) <= high:
        raise IdentityError(f"{where} must be between {low:g} and {high:g}")
    return float(value)


def _iso_date(value: Any, where: str) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise IdentityError(f"{where} must be an ISO 8601 date string")
    try:
        dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise IdentityError(f"{where} is not an ISO 8601 date: {value!r}") from None


def _section(identity: dict[str, Any], key: str, required: bool) -> dict[str, Any]:
    value = identity.get(key)
    if value is None:
        if required:
            raise IdentityError(f"{key} is required")
        return {}
    if not isinstance(value, dict):
        raise IdentityError(f"{key} must be an object")
    return value


def validate_identity(identity: Any) -> dict[str, Any]:
    if not isinstance(identity, dict):
        raise IdentityError("identity must be a JSON object")
    _require_str(identity, "sensor_id", "identity")

    location = _section(identity, "location", required=True)
    _require_str(location, "city", "location")
    coordinates = location.get("coordinates")
    if not isinstance(coordinates, dict):
        raise IdentityError("location.coordinates is required (latitude, longitude)")
    _number(coordinates.get("latitude"), "location.coordinates.latitude", -90, 90)
    _number(coordinates.get("longitude"), "location.coordinates.longitude", -180, 180)
    timezone = location.get("timezone")
    if timezone is not None:
        try:
            ZoneInfo(str(timezone))
        except (ZoneInfoNotFoundError, ValueError):
            raise IdentityError(f"location.timezone {timezone!r} is not an IANA time zone name") from None

    device = _section(identity, "device_info", required=True)
    _require_str(device, "manufacturer", "device_info")
    _require_str(device, "model", "device_info")
    firmware = device.get("firmware_version")
    if not isinstance(firmware, str):
        raise IdentityError("device_info.firmware_version is required and must be a string (MAJOR.MINOR.PATCH)")
    if not _SEMVER.match(firmware):
        raise IdentityError(f"device_info.firmware_version {firmware!r} is not SemVer MAJOR.MINOR.PATCH")
    _iso_date(device.get("manufacture_date"), "device_info.manufacture_date")

    deployment = _section(identity, "deployment", required=False)
    _iso_date(deployment.get("installation_date"), "deployment.installation_date")
    if deployment.get("height_meters") is not None:
        _number(deployment["height_meters"], "deployment.height_meters", float("-inf"), float("inf"))
    if deployment.get("orientation_degrees") is not None:
        _number(deployment["orientation_degrees"], "deployment.orientation_degrees", 0, 360)

    metadata = _section(identity, "metadata", required=False)
    _iso_date(metadata.get("identity_generation_timestamp"), "metadata.identity_generation_timestamp")
    seed = metadata.get("generation_seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, str))):
        raise IdentityError("metadata.generation_seed must be an integer or a string")
    return identity


def load_identity(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as exc:
        raise IdentityError(f"cannot read identity file {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise IdentityError(f"identity file {path} is not valid JSON: {exc}") from None
    return validate_identity(data)
