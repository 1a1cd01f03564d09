"""The fleet file: pydantic models and `load_fleet`, which reports every problem as one InputError line."""

from __future__ import annotations

import configparser
import difflib
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from fleetdeploy.errors import InputError
from fleetdeploy.fleet.canary_spec import CanarySpec
from fleetdeploy.fleet.clouds import CloudName
from fleetdeploy.fleet.clouds import rules as cloud_rules
from fleetdeploy.fleet.configure_spec import ConfigureSpec
from fleetdeploy.fleet.files import check_readable_file, resolve_path
from fleetdeploy.fleet.fleetfile import KeyPathError as _At
from fleetdeploy.fleet.fleetfile import one_line, read_mapping
from fleetdeploy.fleet.image_ref import TAG as _TAG
from fleetdeploy.fleet.image_ref import check_image as _check_image
from fleetdeploy.fleet.orchestrator_spec import LOCAL, OrchestratorSpec
from fleetdeploy.fleet.regions import (
    DefaultsSpec,
    RegionSpec,
    StrictModel,
    is_known_region,
)
from fleetdeploy.fleet.role_options import TOOL_SET_VARS, role_options, value_problem
from fleetdeploy.fleet.rolling_spec import RollingSpec
from fleetdeploy.fleet.skypilot_spec import SkyPilotSpec
from fleetdeploy.fleet.ssh_spec import SshSpec
from fleetdeploy.fleet.watch_spec import WatchSpec
from fleetdeploy.providers.registry import entries as provider_entries

DEFAULT_BACALHAU_VERSION = "v1.9.3"
# facts.md: Bacalhau node: the v1.5 config schema starts at v1.5.0, but v1.5.0 and v1.5.1 serve the unredacted
# config (token included) on their unauthenticated local API; -dind images exist from v1.6.3.
MIN_BACALHAU_VERSION = (1, 5, 2)
TOKEN_LEAKING_BACALHAU_VERSIONS = frozenset({(1, 5, 0), (1, 5, 1)})
MIN_BACALHAU_DIND_VERSION = (1, 6, 3)
BACALHAU_REPOSITORY = "ghcr.io/bacalhau-project/bacalhau"
SENSOR_REPOSITORY = "ghcr.io/bacalhau-project/sensor-log-generator"
DEFAULT_LOCAL_NODE_IMAGE = "localhost/fleet-node:trixie"
RESERVED_LABEL_KEYS = frozenset({"fleet", "region", "zone", "instance-id", "spot"})

_NAME = re.compile(r"[a-z]([a-z0-9-]{0,38}[a-z0-9])?")
_VERSION = re.compile(r"v(\d+)\.(\d+)\.(\d+)")
# facts.md: Sensor: the sensor-log-generator's release workflow pushes :vX.Y.Z, :X.Y.Z, :vX.Y, :vX (and :latest).
_SENSOR_RELEASE_TAG = re.compile(r"v\d+(\.\d+){0,2}|\d+\.\d+\.\d+")
_LABEL_KEY = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?")
_LABEL_VALUE = re.compile(r"[A-Za-z0-9._:/@+-]{1,255}")


# RegionSpec and DefaultsSpec live in regions.py, next to the placement checks they use; all models share one base.
_Model = StrictModel


class AwsCredentialsSpec(_Model):
    file: Path
    profile: str = "default"

    _resolve = field_validator("file", mode="before")(resolve_path)

    @model_validator(mode="after")
    def _parse(self) -> AwsCredentialsSpec:
        try:
            check_readable_file(self.file)
        except ValueError as exc:
            raise _At("file", str(exc)) from None
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read_string(self.file.read_text(encoding="utf-8"))
        except (configparser.Error, UnicodeDecodeError):
            # configparser messages quote the offending line, which may hold a key: name the file only.
            raise _At("file", f"{self.file}: not an INI credentials file") from None
        if not parser.has_section(self.profile):
            raise _At("profile", f"profile '{self.profile}' not found in {self.file}")
        for key in ("aws_access_key_id", "aws_secret_access_key"):
            if not parser.get(self.profile, key, fallback="").strip():
                raise _At("file", f"{self.file}: profile '{self.profile}' has no {key}")
        return self


class BacalhauSpec(_Model):
    version: str = DEFAULT_BACALHAU_VERSION
    image: str = ""

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        match = _VERSION.fullmatch(value)
        if not match:
            raise ValueError("must look like vX.Y.Z (e.g. v1.9.3)")
        version = tuple(int(part) for part in match.groups())
        if version in TOKEN_LEAKING_BACALHAU_VERSIONS:
            raise ValueError(
                "v1.5.0 and v1.5.1 return the orchestrator token unredacted from their local API: use v1.5.2 or newer"
            )
        if version < MIN_BACALHAU_VERSION:
            raise ValueError("must be v1.5.2 or newer (older releases use another config schema)")
        return value

    @property
    def version_tuple(self) -> tuple[int, ...]:
        """The version as numbers, e.g. (1, 9, 3) (`version` is a checked vX.Y.Z)."""
        return tuple(int(part) for part in self.version[1:].split("."))

    @model_validator(mode="after")
    def _image(self) -> BacalhauSpec:
        self.image = self.image or f"{BACALHAU_REPOSITORY}:{self.version}"
        try:
            _check_image(self.image)
        except ValueError as exc:
            raise _At("image", str(exc)) from None
        return self


class SensorSpec(_Model):
    version: str
    image: str = ""

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not _TAG.fullmatch(value) or value == "latest":
            raise ValueError("must be a pinned image tag (not 'latest')")
        return value

    @model_validator(mode="after")
    def _image(self) -> SensorSpec:
        # Only the derived ghcr.io image has known tags; an explicit image (a test double, a mirror) may use any.
        if not self.image and not _SENSOR_RELEASE_TAG.fullmatch(self.version):
            raise _At(
                "version",
                f"{SENSOR_REPOSITORY} is tagged vX.Y.Z, X.Y.Z, vX.Y or vX (e.g. v1.17.0): "
                "use one of those, or set sensor.image for another tag",
            )
        self.image = self.image or f"{SENSOR_REPOSITORY}:{self.version}"
        try:
            _check_image(self.image)
        except ValueError as exc:
            raise _At("image", str(exc)) from None
        return self


class ImagesSpec(_Model):
    source: Literal["registry", "archive"] = "registry"
    bacalhau_archive: Path | None = None
    sensor_archive: Path | None = None

    _resolve = field_validator("bacalhau_archive", "sensor_archive", mode="before")(resolve_path)

    @model_validator(mode="after")
    def _archives(self) -> ImagesSpec:
        for key in ("bacalhau_archive", "sensor_archive"):
            path = getattr(self, key)
            if self.source == "registry" and path is not None:
                raise _At(key, "only used with source: archive")
            if self.source == "archive":
                if path is None:
                    raise _At(key, "required when source is archive")
                try:
                    check_readable_file(path)
                except ValueError as exc:
                    raise _At(key, str(exc)) from None
        return self


class LocalSpec(_Model):
    privileged: bool = False
    node_image: str = DEFAULT_LOCAL_NODE_IMAGE
    # A region's own node image (like a region's own AMI); it must already exist on this machine.
    node_images: dict[str, str] = Field(default_factory=dict)

    _node_image = field_validator("node_image")(_check_image)

    @field_validator("node_images")
    @classmethod
    def _node_images(cls, value: dict[str, str]) -> dict[str, str]:
        for region, image in value.items():
            try:
                _check_image(image)
            except ValueError as exc:
                raise _At(region, str(exc)) from None
        return value

    def image_of(self, region: str) -> str:
        return self.node_images.get(region, self.node_image)


def _check_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(
            "must be 1-40 lower-case letters, digits or '-', start with a letter and end with a letter or digit"
        )
    return value


def _check_provider(value: str) -> str:
    known = sorted(provider_entries())
    if value not in known:
        close = difflib.get_close_matches(value, known, n=1)
        raise ValueError(f"must be one of {', '.join(known)}" + (f" (did you mean '{close[0]}'?)" if close else ""))
    return value


def _check_regions(value: dict[str, RegionSpec]) -> dict[str, RegionSpec]:
    if not value:
        raise ValueError("at least one region is required")
    for region, spec in value.items():
        if not is_known_region(region):
            raise _At(region, "unknown region (not an AWS, GCP or Azure region name)")
        if spec.cloud is not None:
            spec.check_placement(region, CloudName(spec.cloud))
    return value


class FleetIdentity(_Model):
    """What names a fleet's machines: all `down` needs to find and remove them, whatever else the file says."""

    name: str
    provider: str = "skypilot"  # a registered provider (providers/registry.py)
    regions: dict[str, RegionSpec]

    _name = field_validator("name")(_check_name)
    _provider = field_validator("provider")(_check_provider)
    _regions = field_validator("regions")(_check_regions)


class Fleet(FleetIdentity):
    defaults: DefaultsSpec = Field(default_factory=DefaultsSpec)
    orchestrator: OrchestratorSpec
    aws_credentials: AwsCredentialsSpec | None = None
    bacalhau: BacalhauSpec = Field(default_factory=BacalhauSpec)
    sensor: SensorSpec
    images: ImagesSpec = Field(default_factory=ImagesSpec)
    labels: dict[str, str] = Field(default_factory=dict)
    local: LocalSpec = Field(default_factory=LocalSpec)
    watch: WatchSpec = Field(default_factory=WatchSpec)
    rolling: RollingSpec = Field(default_factory=RollingSpec)
    configure: ConfigureSpec = Field(default_factory=ConfigureSpec)
    canary: CanarySpec = Field(default_factory=CanarySpec)
    skypilot: SkyPilotSpec = Field(default_factory=SkyPilotSpec)
    ssh: SshSpec = Field(default_factory=SshSpec)
    # Overrides of role variables (roles/*/meta/argument_specs.yml), e.g. bacalhau_heartbeat_interval: 30s.
    role_vars: dict[str, object] = Field(default_factory=dict)

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key, label in value.items():
            if not _LABEL_KEY.fullmatch(key):
                raise _At(key, "label keys use letters, digits, '.', '_' or '-' (at most 63)")
            if key.lower() in RESERVED_LABEL_KEYS:
                raise _At(key, f"reserved label key (set by the tool: {', '.join(sorted(RESERVED_LABEL_KEYS))})")
            if not _LABEL_VALUE.fullmatch(label):
                raise _At(key, "label values are 1-255 of letters, digits or . _ : / @ + -")
        return value

    @field_validator("role_vars")
    @classmethod
    def _role_vars(cls, value: dict[str, object]) -> dict[str, object]:
        known = role_options()
        for key in value:
            if key not in known:
                close = difflib.get_close_matches(key, sorted(known), n=1)
                raise _At(key, "not a variable of any role" + (f" (did you mean '{close[0]}'?)" if close else ""))
            if key in TOOL_SET_VARS:
                raise _At(key, "set by the tool from the fleet file: change the fleet file's own key instead")
            problem = value_problem(key, value[key])
            if problem:
                raise _At(key, problem)
        return value

    @model_validator(mode="after")
    def _role_var_rules(self) -> Fleet:
        # role_vars is the only way to choose dind; its image exists only from v1.6.3 (facts.md: Bacalhau node).
        if self.role_vars.get("bacalhau_docker_mode") == "dind" and (
            self.bacalhau.version_tuple < MIN_BACALHAU_DIND_VERSION
        ):
            raise _At(
                "role_vars.bacalhau_docker_mode",
                "dind needs bacalhau.version v1.6.3 or newer (no -dind image exists before it): use socket or upgrade",
            )
        if "bacalhau_node_name" in self.role_vars:
            # health/status/up find each node in the orchestrator's list by this name.
            raise _At("role_vars.bacalhau_node_name",
                      "the node name is the inventory host name (the orchestrator's view is matched by it)")
        for region in self.local.node_images:
            if region not in self.regions:
                raise _At(f"local.node_images.{region}", "not a region of this fleet")
        for key in self.role_vars:
            if key.startswith("image_archive_"):
                raise _At(
                    f"role_vars.{key}",
                    "set by the bacalhau and sensor roles when they load an archive "
                    "(use images: in the fleet file, or bacalhau_image_archive_dir)",
                )
        return self

    @model_validator(mode="after")
    def _provider_rules(self) -> Fleet:
        entries = provider_entries()
        if self.orchestrator.endpoint == LOCAL and not entries[self.provider].runs_local_orchestrator:
            runs_one = ", ".join(sorted(name for name, e in entries.items() if e.runs_local_orchestrator))
            raise _At("orchestrator.endpoint", f"'local' is only allowed with provider: {runs_one}")
        for name, entry in entries.items():
            key = entry.settings_key
            if key and key in self.model_fields_set and self.provider != name:
                raise _At(key, f"only used with provider: {name}")
        return self

    @model_validator(mode="after")
    def _placement(self) -> Fleet:
        # A region without its own `cloud:` is the defaults' cloud's: only now is that known.
        for region, spec in self.regions.items():
            try:
                spec.check_placement(region, self.cloud_of(region))
            except _At as exc:
                raise _At(f"regions.{exc.path}", str(exc)) from None
        return self

    def cloud_of(self, region: str) -> CloudName:
        """The cloud a region's nodes run on: its own `cloud:`, else the defaults' (aws unless set)."""
        return CloudName(self.regions[region].cloud or self.defaults.cloud)

    def instance_types_of(self, region: str) -> list[str]:
        """A region's instance types in the order tried: its own, else the defaults' when the region is of the
        defaults' cloud, else its cloud's default (clouds.py)."""
        own = self.regions[region].own_instance_types
        if own:
            return own
        cloud = self.cloud_of(region)
        defaults = self.defaults
        if cloud == defaults.cloud:
            listed = defaults.instance_types or ([defaults.instance_type] if defaults.instance_type else None)
            if listed:
                return listed
        return [cloud_rules(cloud).default_instance_type]

    def image_id_of(self, region: str) -> str | None:
        """A region's own image, else the defaults' for a region of the defaults' cloud (an image is one cloud's)."""
        own = self.regions[region].image_id
        if own or self.cloud_of(region) != self.defaults.cloud:
            return own
        return self.defaults.image_id

    @property
    def clouds(self) -> list[CloudName]:
        """The clouds this fleet uses, in the order of its regions."""
        return list(dict.fromkeys(self.cloud_of(region) for region in self.regions))

    @property
    def total_nodes(self) -> int:
        """Number of nodes over all regions."""
        return sum(spec.count for spec in self.regions.values())

    def cluster_name(self, region: str) -> str:
        """The SkyPilot/local cluster name of one region: `<name>-<region>`."""
        return f"{self.name}-{region}"


def load_fleet_for_teardown(path: str | Path) -> tuple[Fleet, str]:
    """The fleet for `down`: the whole file when it is valid; else only what names the fleet's machines (name,
    provider, regions; checked as strictly as ever), and the whole file's problem as a warning. A mistake elsewhere
    (a version, a token file) must not keep a fleet running and costing money."""
    try:
        return load_fleet(path), ""
    except InputError as whole:
        problem = str(whole)
    path = Path(path)
    data = read_mapping(path)  # a file that is not a YAML mapping at all: that error stands
    subset = {key: data[key] for key in ("name", "provider", "regions") if key in data}
    try:
        identity = FleetIdentity.model_validate(subset, context={"base_dir": path.resolve().parent})
    except ValidationError as exc:
        raise InputError(f"{path}: {one_line(exc, FleetIdentity)}") from None
    raw = data.get("orchestrator")
    endpoint = LOCAL if isinstance(raw, dict) and raw.get("endpoint") == LOCAL else ""
    # Where the fleet's state is kept names its machines too: torn down against another API server, a team's
    # fleet would look gone and keep running.
    try:
        skypilot = SkyPilotSpec.model_validate(data.get("skypilot") or {})
    except ValidationError as exc:
        raise InputError(f"{path}: skypilot.{one_line(exc, SkyPilotSpec)}") from None
    fleet = Fleet.model_construct(name=identity.name, provider=identity.provider, regions=identity.regions,
                                  orchestrator=OrchestratorSpec.model_construct(endpoint=endpoint), skypilot=skypilot)
    return fleet, problem


def load_fleet(path: str | Path) -> Fleet:
    """Load and validate a fleet file; every problem becomes an InputError with one line naming file and key."""
    path = Path(path)
    data = read_mapping(path)
    try:
        return Fleet.model_validate(data, context={"base_dir": path.resolve().parent})
    except ValidationError as exc:
        raise InputError(f"{path}: {one_line(exc, Fleet)}") from None
