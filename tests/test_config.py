"""Fleet-file model: every bad input is one InputError line naming the file and key; good inputs normalise."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetdeploy.errors import InputError
from fleetdeploy.fleet.files import read_token
from fleetdeploy.fleet.model import Fleet, load_fleet
from fleetdeploy.fleet.orchestrator_spec import normalize_api_url, normalize_endpoint
from fleetdeploy.fleet.regions import zone_belongs_to

TOKEN = "s3cr3t-token-value"

BASE: dict[str, Any] = {
    "name": "demo",
    "regions": {"us-east-1": {"count": 2}},
    "orchestrator": {"endpoint": "orch.example.com", "token_file": "token"},
    "sensor": {"version": "1.2.3"},
}


@pytest.fixture()
def fleet_dir(tmp_path: Path) -> Path:
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    creds = tmp_path / "aws-credentials"
    creds.write_text("[default]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = abc\n")
    (tmp_path / "bacalhau.tar").write_bytes(b"x")
    (tmp_path / "sensor.tar").write_bytes(b"x")
    return tmp_path


def write(directory: Path, data: Any, name: str = "fleet.yaml") -> Path:
    path = directory / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def mutate(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    change(data)
    return data


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value

    return change


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        node = data
        for part in parents:
            node = node[part]
        del node[last]

    return change


def _both(*changes: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        for one in changes:
            one(data)

    return change


R, E, Z, T = "regions/us-east-1", "regions.us-east-1", "us-east-1a", "t3.small"
EITHER = "instance_types: give either instance_type or instance_types, not both"
BAD: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    (
        "typo-count",
        _set("regions/us-east-1", {"cont": 2}),
        "regions.us-east-1.cont: unknown key (did you mean 'count'?)",
    ),
    ("typo-top", _set("regoins", {}), "regoins: unknown key (did you mean 'regions'?)"),
    ("unknown-no-hint", _set("zzz", 1), "zzz: unknown key"),
    ("missing-name", _drop("name"), "name: required key missing"),
    ("missing-orchestrator", _drop("orchestrator"), "orchestrator: required key missing"),
    ("missing-sensor", _drop("sensor"), "sensor: required key missing"),
    ("name-upper", _set("name", "Demo"), "name: must be 1-40 lower-case"),
    ("name-long", _set("name", "a" * 41), "name: must be 1-40 lower-case"),
    ("name-underscore", _set("name", "my_fleet"), "name: must be 1-40 lower-case"),
    ("name-int", _set("name", 5), "name: must be a string"),
    ("provider", _set("provider", "aws"), "provider: must be one of local, skypilot"),
    ("watch-typo", _set("watch/interval", 30), "watch.interval: unknown key (did you mean 'interval_seconds'?)"),
    ("watch-zero-interval", _set("watch/interval_seconds", 0), "watch.interval_seconds: must be >= 1"),
    ("watch-webhook-scheme", _set("watch/webhook_url", "ftp://hooks.example.com/x"),
     "watch.webhook_url: must be an http(s):// URL"),
    ("watch-textfile-suffix", _set("watch/metrics_textfile", "fleet.txt"), "watch.metrics_textfile: must end in .prom"),
    ("watch-backoff-order", _set("watch/backoff_max_seconds", 10),
     "watch.backoff_max_seconds: must be >= backoff_min_seconds"),
    ("watch-price", _set("watch/max_hourly_price", 0), "watch.max_hourly_price: "),
    ("local-image-region", _set("local/node_images", {"ap-south-1": "localhost/x:1"}),
     "local.node_images.ap-south-1: not a region of this fleet"),
    ("role-var-choice", _set("role_vars", {"bacalhau_log_level": "loud"}),
     "role_vars.bacalhau_log_level: must be one of: trace, debug, info, warn, error, fatal, panic"),
    ("role-var-type", _set("role_vars", {"health_check_disk_min_free_percent": "lots"}),
     "role_vars.health_check_disk_min_free_percent: must be of type float"),
    ("provider-typo", _set("provider", "skypilto"), "provider: must be one of local, skypilot (did you mean 'skypilot'?)"),
    ("regions-empty", _set("regions", {}), "regions: at least one region is required"),
    ("regions-list", _set("regions", ["us-east-1"]), "regions: must be a mapping"),
    ("region-int-key", _set("regions", {123: {"count": 1}}), "regions.123: keys must be strings"),
    ("region-unknown", _set("regions", {"us-east-9": {"count": 1}}), "regions.us-east-9: unknown region (not an AWS, GCP or Azure region name)"),
    ("count-zero", _set("regions/us-east-1/count", 0), "regions.us-east-1.count: must be >= 1"),
    ("count-str", _set("regions/us-east-1/count", "2"), "regions.us-east-1.count: must be a whole number"),
    ("count-bool", _set("regions/us-east-1/count", True), "regions.us-east-1.count: must be a whole number"),
    (
        "zone-other-region",
        _set("regions/us-east-1/zone", "us-west-2a"),
        "regions.us-east-1.zone: zone 'us-west-2a' is not in region us-east-1",
    ),
    ("zone-garbage", _set("regions/us-east-1/zone", "us-east-1zz"), "regions.us-east-1.zone: zone 'us-east-1zz'"),
    (
        "instance-type",
        _set("regions/us-east-1/instance_type", "t3 medium"),
        "regions.us-east-1.instance_type: is not an EC2 instance type",
    ),
    # Capacity lists (the failover order). R/E: the region's path for _set and its key path in messages.
    ("zones-empty", _set(f"{R}/zones", []), f"{E}.zones: must list at least one zone (or leave the key out)"),
    ("zones-dup", _set(f"{R}/zones", [Z, "us-east-1b", Z]), f"{E}.zones: duplicate zone 'us-east-1a'"),
    ("zones-other", _set(f"{R}/zones", [Z, "us-west-2a"]), f"{E}.zones: zone 'us-west-2a' is not in region"),
    ("zones-not-list", _set(f"{R}/zones", Z), f"{E}.zones: must be a list ([first, second, ...])"),
    ("zones-item-int", _set(f"{R}/zones", [Z, 5]), f"{E}.zones.1: must be a string"),
    ("zone-and-zones", _both(_set(f"{R}/zone", Z), _set(f"{R}/zones", [Z])), f"{E}.zones: give either zone or"),
    ("types-empty", _set(f"{R}/instance_types", []), f"{E}.instance_types: must list at least one instance type"),
    ("types-dup", _set(f"{R}/instance_types", [T, "t3a.small", T]), f"{E}.instance_types: duplicate instance type"),
    ("types-bad", _set(f"{R}/instance_types", [T, "t3 small"]), f"{E}.instance_types.1: is not an EC2 instance"),
    ("region-both", _both(_set(f"{R}/instance_type", T), _set(f"{R}/instance_types", [T])), f"{E}.{EITHER}"),
    ("defaults-types-empty", _set("defaults/instance_types", []), "defaults.instance_types: must list at least one"),
    ("defaults-types-dup", _set("defaults/instance_types", [T, T]), "defaults.instance_types: duplicate instance type"),
    ("defaults-types-bad", _set("defaults/instance_types", ["T3"]), "defaults.instance_types.0: is not an EC2"),
    (
        "defaults-both",
        _both(_set("defaults/instance_type", T), _set("defaults/instance_types", [T])),
        f"defaults.{EITHER}",
    ),
    (
        "fallback-without-spot",
        _both(_set("defaults/spot", False), _set("defaults/on_demand_fallback", True)),
        "defaults.on_demand_fallback: only used with spot: true",
    ),
    ("fallback-str", _set("defaults/on_demand_fallback", "yes"), "defaults.on_demand_fallback: must be true or false"),
    ("fallback-typo", _set("defaults/on_demand_fallbak", True), "defaults.on_demand_fallbak: unknown key (did you"),
    ("disk-small", _set("defaults/disk_size_gb", 4), "defaults.disk_size_gb: must be >= 8"),
    ("spot-str", _set("defaults/spot", "yes"), "defaults.spot: must be true or false"),
    (
        "defaults-typo",
        _set("defaults/instance_typ", "t3.large"),
        "defaults.instance_typ: unknown key (did you mean 'instance_type'?)",
    ),
    (
        "endpoint-http",
        _set("orchestrator/endpoint", "http://orch:4222"),
        "orchestrator.endpoint: unsupported scheme 'http://'",
    ),
    (
        "endpoint-userinfo",
        _set("orchestrator/endpoint", "nats://tok@orch:4222"),
        "orchestrator.endpoint: must not contain credentials",
    ),
    ("endpoint-port", _set("orchestrator/endpoint", "orch:99999"), "orchestrator.endpoint: has an invalid port"),
    ("endpoint-port-text", _set("orchestrator/endpoint", "orch:abc"), "orchestrator.endpoint: has an invalid port"),
    ("endpoint-empty-host", _set("orchestrator/endpoint", "nats://:4222"), "orchestrator.endpoint: has an empty host"),
    (
        "endpoint-path",
        _set("orchestrator/endpoint", "nats://orch:4222/x"),
        "orchestrator.endpoint: must be host[:port] without a path",
    ),
    ("endpoint-empty", _set("orchestrator/endpoint", " "), "orchestrator.endpoint: must not be empty"),
    (
        "endpoint-local-skypilot",
        _set("orchestrator/endpoint", "local"),
        "orchestrator.endpoint: 'local' is only allowed with provider: local",
    ),
    ("token-missing", _set("orchestrator/token_file", "nope"), "orchestrator.token_file: "),
    ("bacalhau-version-old", _set("bacalhau/version", "v1.4.0"), "bacalhau.version: must be v1.5.2 or newer"),
    *[
        (f"bacalhau-version-leaks-token-{v}", _set("bacalhau/version", v),
         "bacalhau.version: v1.5.0 and v1.5.1 return the orchestrator token unredacted from their local API: "
         "use v1.5.2 or newer")
        for v in ("v1.5.0", "v1.5.1")
    ],
    (
        "dind-too-old",
        _both(_set("bacalhau/version", "v1.6.2"), _set("role_vars", {"bacalhau_docker_mode": "dind"})),
        "role_vars.bacalhau_docker_mode: dind needs bacalhau.version v1.6.3 or newer",
    ),
    (
        "dind-too-old-custom-image",
        _both(_set("bacalhau", {"version": "v1.5.2", "image": "localhost/b:1"}),
              _set("role_vars", {"bacalhau_docker_mode": "dind"})),
        "role_vars.bacalhau_docker_mode: dind needs bacalhau.version v1.6.3 or newer",
    ),
    (
        "role-vars-image-archive",
        _set("role_vars", {"image_archive_dir": "/srv/images"}),
        "role_vars.image_archive_dir: set by the bacalhau and sensor roles",
    ),
    ("bacalhau-version-format", _set("bacalhau/version", "1.9.3"), "bacalhau.version: must look like vX.Y.Z"),
    (
        "bacalhau-image-latest",
        _set("bacalhau/image", "ghcr.io/x/bacalhau:latest"),
        "bacalhau.image: must pin a version",
    ),
    ("bacalhau-image-untagged", _set("bacalhau/image", "ghcr.io/x/bacalhau"), "bacalhau.image: needs a pinned tag"),
    ("sensor-latest", _set("sensor/version", "latest"), "sensor.version: must be a pinned image tag"),
    *[
        (f"sensor-tag-shape-{tag}", _set("sensor/version", tag),
         "sensor.version: ghcr.io/bacalhau-project/sensor-log-generator is tagged vX.Y.Z, X.Y.Z, vX.Y or vX "
         "(e.g. v1.17.0): use one of those, or set sensor.image for another tag")
        for tag in ("2505081831", "1.17", "1", "v1.17.0.1", "v1.17.0-rc1", "V1.17.0", "test")
    ],
    ("images-source", _set("images/source", "s3"), "images.source: must be one of 'registry' or 'archive'"),
    (
        "archive-missing-path",
        _set("images", {"source": "archive", "sensor_archive": "sensor.tar"}),
        "images.bacalhau_archive: required when source is archive",
    ),
    (
        "archive-not-found",
        _set("images", {"source": "archive", "bacalhau_archive": "gone.tar", "sensor_archive": "sensor.tar"}),
        "images.bacalhau_archive: ",
    ),
    (
        "archive-with-registry",
        _set("images", {"bacalhau_archive": "bacalhau.tar"}),
        "images.bacalhau_archive: only used with source: archive",
    ),
    ("label-reserved", _set("labels", {"region": "x"}), "labels.region: reserved label key"),
    ("label-bad-key", _set("labels", {"bad key": "x"}), "labels.bad key: label keys use"),
    ("label-bad-value", _set("labels", {"team": "a,b=c"}), "labels.team: label values are"),
    ("label-value-int", _set("labels", {"team": 5}), "labels.team: must be a string"),
    ("local-with-skypilot", _set("local", {"privileged": True}), "local: only used with provider: local"),
    (
        "local-typo",
        _both(_set("provider", "local"), _set("local", {"node_img": "x:y"})),
        "local.node_img: unknown key (did you mean 'node_image'?)",
    ),
    ("api-scheme", _set("orchestrator/api", "ftp://orch:1234"), "orchestrator.api: unsupported scheme 'ftp://'"),
    ("api-no-scheme", _set("orchestrator/api", "orch:1234"), "orchestrator.api: needs a scheme"),
    ("api-path", _set("orchestrator/api", "http://orch:1234/api/v1"), "orchestrator.api: must be host[:port]"),
    ("api-credentials", _set("orchestrator/api", "https://key@orch"), "orchestrator.api: must not contain credentials"),
    ("api-port", _set("orchestrator/api", "http://orch:0"), "orchestrator.api: has an invalid port"),
    ("api-local-remote", _set("orchestrator/api", "local"),
     "orchestrator.api: 'local' is only allowed with endpoint: local"),
    ("api-key-without-api", _set("orchestrator/api_token_file", "token"),
     "orchestrator.api_token_file: only used with orchestrator.api"),
    ("api-key-missing", _both(_set("orchestrator/api", "http://orch:1234"), _set("orchestrator/api_token_file", "no")),
     "orchestrator.api_token_file: "),
    ("api-typo", _set("orchestrator/api_url", "http://orch:1234"),
     "orchestrator.api_url: unknown key (did you mean 'api'"),
    ("node-name", _set("role_vars", {"bacalhau_node_name": "x"}),
     "role_vars.bacalhau_node_name: the node name is the inventory host name"),
    ("aws-missing-file", _set("aws_credentials", {"file": "none"}), "aws_credentials.file: "),
    (
        "aws-profile",
        _set("aws_credentials", {"file": "aws-credentials", "profile": "prod"}),
        "aws_credentials.profile: profile 'prod' not found",
    ),
]


@pytest.mark.parametrize(("change", "expected"), [(c, e) for _, c, e in BAD], ids=[i for i, _, _ in BAD])
def test_bad_input_is_one_line_naming_the_key(fleet_dir: Path, change: Any, expected: str) -> None:
    path = write(fleet_dir, mutate(change))
    with pytest.raises(InputError) as info:
        load_fleet(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: {expected}"), message
    assert "validation error" not in message.lower()  # never a pydantic dump
    assert TOKEN not in message


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "file is empty"),
        ("# only a comment\n", "file is empty"),
        ("- a\n- b\n", "the top level must be a mapping of keys (got list)"),
        ("just text", "the top level must be a mapping of keys (got str)"),
        ("name: [unclosed\n", "YAML syntax error at line"),
        ("name: a\nname: b\n", "YAML syntax error at line 2, column 1: duplicate key 'name'"),
    ],
)
def test_unusable_files(fleet_dir: Path, content: str, expected: str) -> None:
    path = write(fleet_dir, content)
    with pytest.raises(InputError) as info:
        load_fleet(path)
    assert str(info.value).startswith(f"{path}: {expected}"), str(info.value)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        load_fleet(tmp_path / "absent.yaml")
    with pytest.raises(InputError, match="is a directory"):
        load_fleet(tmp_path)


@pytest.mark.parametrize(
    ("prepare", "expected"),
    [
        (lambda p: p.chmod(0o644), "readable by other users (mode 0644); run: chmod 600"),
        (lambda p: p.chmod(0o640), "readable by other users (mode 0640); run: chmod 600"),
        (lambda p: p.write_text("  \n"), "file is empty"),
        (lambda p: (p.unlink(), p.mkdir()), "not a regular file"),
    ],
    ids=["world-readable", "group-readable", "blank", "directory"],
)
def test_token_file_rules(fleet_dir: Path, prepare: Callable[[Path], Any], expected: str) -> None:
    prepare(fleet_dir / "token")
    with pytest.raises(InputError) as info:
        load_fleet(write(fleet_dir, BASE))
    assert f"orchestrator.token_file: {fleet_dir / 'token'}: {expected}" in str(info.value)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("not an ini file\n", "aws_credentials.file: .*not an INI credentials file"),
        ("[default]\naws_access_key_id = AKIA\n", "profile 'default' has no aws_secret_access_key"),
        ("[default]\naws_secret_access_key = x\n", "profile 'default' has no aws_access_key_id"),
    ],
)
def test_aws_credentials_file_rules(fleet_dir: Path, content: str, expected: str) -> None:
    (fleet_dir / "aws-credentials").write_text(content)
    data = mutate(_set("aws_credentials", {"file": "aws-credentials"}))
    with pytest.raises(InputError, match=expected) as info:
        load_fleet(write(fleet_dir, data))
    assert "AKIA" not in str(info.value)


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("orch.example.com", "nats://orch.example.com:4222"),
        ("orch.example.com:4222", "nats://orch.example.com:4222"),
        ("nats://orch.example.com:4222", "nats://orch.example.com:4222"),
        ("NATS://Orch.Example.com", "nats://orch.example.com:4222"),
        ("10.0.0.5:4333", "nats://10.0.0.5:4333"),
        ("tls://orch.example.com:4443", "tls://orch.example.com:4443"),
        ("tls://orch.example.com", "tls://orch.example.com:4222"),
        ("nats://orch.example.com:4222/", "nats://orch.example.com:4222"),
        ("[::1]:4222", "nats://[::1]:4222"),
        ("  orch  ", "nats://orch:4222"),
    ],
)
def test_endpoint_normalisation(raw: str, normalised: str) -> None:
    assert normalize_endpoint(raw) == normalised


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("http://Orch.Example.com:1234", "http://orch.example.com:1234"),
        ("HTTPS://orch.example.com/", "https://orch.example.com"),
        ("http://127.0.0.1:1234", "http://127.0.0.1:1234"),
        ("http://[::1]:1234", "http://[::1]:1234"),
        ("local", "local"),
    ],
)
def test_api_url_normalisation(raw: str, normalised: str) -> None:
    assert normalize_api_url(raw) == normalised


def test_api_key_file_gets_the_token_rules(fleet_dir: Path) -> None:
    key = fleet_dir / "api.key"
    key.write_text("k-123\n")
    key.chmod(0o640)
    data = mutate(_set("orchestrator", {**BASE["orchestrator"], "api": "http://orch:1234", "api_token_file": "api.key"}))
    with pytest.raises(InputError, match=r"orchestrator.api_token_file: .*readable by other users"):
        load_fleet(write(fleet_dir, data))
    key.chmod(0o600)
    fleet = load_fleet(write(fleet_dir, data))
    assert fleet.orchestrator.api == "http://orch:1234"
    assert fleet.orchestrator.api_token_file == key


def test_defaults_and_relative_paths(fleet_dir: Path) -> None:
    sub = fleet_dir / "conf"
    sub.mkdir()
    data = mutate(_set("orchestrator/token_file", "../token"))
    fleet = load_fleet(write(sub, data))
    assert fleet.provider == "skypilot"
    assert fleet.orchestrator.endpoint == "nats://orch.example.com:4222"
    assert fleet.orchestrator.token_file == fleet_dir / "token"
    assert fleet.defaults.instance_type is None and fleet.instance_types_of("us-east-1") == ["t3.medium"]
    assert fleet.defaults.spot is True
    assert fleet.defaults.disk_size_gb == 30
    assert fleet.defaults.image_id is None
    assert fleet.bacalhau.version == "v1.9.3"
    assert fleet.bacalhau.image == "ghcr.io/bacalhau-project/bacalhau:v1.9.3"
    assert fleet.sensor.image == "ghcr.io/bacalhau-project/sensor-log-generator:1.2.3"
    assert fleet.images.source == "registry"
    assert fleet.aws_credentials is None
    assert fleet.labels == {}
    assert fleet.local.node_image == "localhost/fleet-node:trixie"
    assert fleet.local.privileged is False


@pytest.mark.parametrize("tag", ["v1.17.0", "1.17.0", "v1.17", "v1"])
def test_sensor_release_tags_derive_the_ghcr_image(fleet_dir: Path, tag: str) -> None:
    fleet = load_fleet(write(fleet_dir, mutate(_set("sensor/version", tag))))
    assert fleet.sensor.image == f"ghcr.io/bacalhau-project/sensor-log-generator:{tag}"


def test_sensor_tag_shape_is_free_with_an_explicit_image(fleet_dir: Path) -> None:
    # Test doubles and mirrors name their own tags (tests/e2e fleets use `version: test`).
    data = mutate(_set("sensor", {"version": "test", "image": "localhost/sensor-double:test"}))
    assert load_fleet(write(fleet_dir, data)).sensor.image == "localhost/sensor-double:test"


@pytest.mark.parametrize(("version", "mode"), [("v1.6.3", "dind"), ("v1.9.3", "dind"), ("v1.5.2", "socket")])
def test_docker_modes_the_version_has_images_for(fleet_dir: Path, version: str, mode: str) -> None:
    data = mutate(_both(_set("bacalhau/version", version), _set("role_vars", {"bacalhau_docker_mode": mode})))
    fleet = load_fleet(write(fleet_dir, data))
    assert fleet.bacalhau.version == version and fleet.role_vars == {"bacalhau_docker_mode": mode}


def test_capacity_lists_and_singular_keys(fleet_dir: Path) -> None:
    regions = {"us-east-1": {"count": 2, "zones": ["us-east-1b", Z], "instance_types": [T]}, "eu-west-1": {"count": 1}}
    fleet = load_fleet(write(fleet_dir, mutate(_set("regions", regions))))
    east = fleet.regions["us-east-1"]
    assert (east.zones, east.zone, east.instance_types, east.instance_type) == (["us-east-1b", Z], None, [T], None)
    assert fleet.defaults.instance_types is None and fleet.defaults.on_demand_fallback is False
    data = mutate(_set("defaults", {"instance_types": [T, "t3a.small"], "on_demand_fallback": True}))
    assert load_fleet(write(fleet_dir, data)).defaults.instance_types == [T, "t3a.small"]


def test_full_local_fleet(fleet_dir: Path) -> None:
    data = mutate(
        lambda d: d.update(
            name="lab-1",
            provider="local",
            regions={"us-east-1": {"count": 2, "zone": "us-east-1-bos-1a"}, "eu-west-1": {"count": 1}},
            orchestrator={"endpoint": "local", "token_file": str(fleet_dir / "token")},
            aws_credentials={"file": "aws-credentials"},
            bacalhau={"version": "v1.5.2", "image": "localhost/bacalhau-double:test"},
            images={"source": "archive", "bacalhau_archive": "bacalhau.tar", "sensor_archive": "sensor.tar"},
            labels={"team": "edge", "site": "lab.1"},
            local={"privileged": True},
        )
    )
    fleet = load_fleet(write(fleet_dir, data))
    assert fleet.total_nodes == 3
    assert fleet.cluster_name("eu-west-1") == "lab-1-eu-west-1"
    assert fleet.orchestrator.endpoint == "local"
    assert fleet.aws_credentials is not None and fleet.aws_credentials.file == fleet_dir / "aws-credentials"
    assert fleet.aws_credentials.profile == "default"
    assert fleet.images.bacalhau_archive == fleet_dir / "bacalhau.tar"
    assert fleet.bacalhau.image == "localhost/bacalhau-double:test"
    assert fleet.local.privileged is True


def test_token_never_in_model_and_read_token(fleet_dir: Path) -> None:
    fleet = load_fleet(write(fleet_dir, BASE))
    assert TOKEN not in fleet.model_dump_json()
    assert TOKEN not in repr(fleet)
    assert read_token(fleet.orchestrator.token_file) == TOKEN
    os.unlink(fleet.orchestrator.token_file)
    with pytest.raises(InputError, match="cannot read the orchestrator token"):
        read_token(fleet.orchestrator.token_file)


def test_models_forbid_extra_everywhere() -> None:
    def models(cls: type) -> set[type]:
        found = {cls}
        for field in cls.model_fields.values():  # type: ignore[attr-defined]
            for arg in [field.annotation, *getattr(field.annotation, "__args__", ())]:
                if isinstance(arg, type) and hasattr(arg, "model_fields"):
                    found |= models(arg)
        return found

    every = models(Fleet)
    assert len(every) >= 9
    assert all(m.model_config.get("extra") == "forbid" for m in every)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("zone", "region", "ok"),
    [
        ("us-east-1a", "us-east-1", True),
        ("us-west-2-lax-1a", "us-west-2", True),
        ("us-east-1", "us-east-1", False),
        ("us-east-1ab", "us-east-1", False),
        ("eu-west-1a", "us-east-1", False),
    ],
)
def test_zone_check(zone: str, region: str, ok: bool) -> None:
    assert zone_belongs_to(zone, region) is ok


def test_example_fleet_file_is_valid(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[1]
    example = (repo / "fleet.example.yaml").read_text()
    assert (repo / "orchestrator_token.example").read_text().strip()
    (tmp_path / "fleet.yaml").write_text(example)
    token = tmp_path / "orchestrator_token"
    token.write_text((repo / "orchestrator_token.example").read_text())
    token.chmod(0o600)
    fleet = load_fleet(tmp_path / "fleet.yaml")
    assert fleet.total_nodes == 3 and fleet.orchestrator.endpoint == "nats://orchestrator.example.com:4222"
    # every top-level key of the model is documented in the example (commented or not)
    for key in Fleet.model_fields:
        assert f"{key}:" in example, key


def test_the_canary_section(tmp_path: Path) -> None:
    fleet_dir = tmp_path / "f"
    fleet_dir.mkdir()
    (fleet_dir / "token").write_text("t\n")
    (fleet_dir / "token").chmod(0o600)
    data = mutate(_set("canary", {"image": "localhost/fleet-python:trixie", "archive": "canary.tar"}))
    with pytest.raises(InputError, match=r"canary.archive: .*canary.tar: file not found"):
        load_fleet(write(fleet_dir, data))
    (fleet_dir / "canary.tar").write_bytes(b"x")
    fleet = load_fleet(write(fleet_dir, data))
    assert fleet.canary.archive == fleet_dir / "canary.tar" and fleet.canary.timeout_seconds == 120
    for bad, message in (({"image": "python"}, "canary.image: needs a pinned tag"),
                         ({"timeout_seconds": 0}, "canary.timeout_seconds"),
                         ({"imag": "python:3"}, "canary.imag")):
        with pytest.raises(InputError, match=message):
            load_fleet(write(fleet_dir, mutate(_set("canary", bad))))


def test_the_skypilot_section_is_the_skypilot_providers(fleet_dir: Path) -> None:
    data = mutate(_set("skypilot", {"api_server": "https://sky.example.com"}))
    assert load_fleet(write(fleet_dir, data)).skypilot.api_server == "https://sky.example.com"
    data["provider"] = "local"
    with pytest.raises(InputError, match="skypilot: only used with provider: skypilot"):
        load_fleet(write(fleet_dir, data))
    typo = mutate(_set("skypilot", {"api_sever": "https://sky.example.com"}))
    with pytest.raises(InputError, match="skypilot.api_sever"):
        load_fleet(write(fleet_dir, typo))


def test_teardown_keeps_the_api_server_that_holds_the_fleet(fleet_dir: Path) -> None:
    """down reads a broken fleet file for what names its machines: where their state is kept is part of that."""
    from fleetdeploy.fleet.model import load_fleet_for_teardown

    data = mutate(_set("skypilot", {"api_server": "https://sky.example.com"}))
    data["bacalhau"] = {"version": "v1.5.0"}  # refused by load_fleet
    fleet, problem = load_fleet_for_teardown(write(fleet_dir, data))
    assert "bacalhau.version" in problem and fleet.skypilot.api_server == "https://sky.example.com"
    data["skypilot"] = {"api_server": "https://root:pw@sky.example.com"}
    with pytest.raises(InputError, match="skypilot.api_server: must not contain credentials"):
        load_fleet_for_teardown(write(fleet_dir, data))
    assert load_fleet_for_teardown(write(fleet_dir, mutate(lambda d: None)))[0].skypilot.api_server is None
