"""Unit tests for roles/sensor/library/sensor_identity.py (the deterministic sensor identity)."""

from __future__ import annotations

import datetime
import http.server
import importlib.util
import json
import re
import threading
import zoneinfo
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

MODULE_PATH = Path(__file__).resolve().parents[1] / "roles" / "sensor" / "library" / "sensor_identity.py"
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
TOP_LEVEL = {"sensor_id", "location", "device_info", "deployment", "metadata"}


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sensor_identity", MODULE_PATH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ident() -> ModuleType:
    return _load()


def _as_file_bytes(identity: dict) -> bytes:
    # What the role writes: to_nice_json(sort_keys=True) is json.dumps(indent=4, sort_keys=True).
    return (json.dumps(identity, indent=4, sort_keys=True) + "\n").encode()


def test_same_id_gives_identical_bytes_even_from_a_fresh_import(ident: ModuleType) -> None:
    first = _as_file_bytes(ident.build_identity("i-0abc123def4567890"))
    second = _as_file_bytes(_load().build_identity("i-0abc123def4567890"))
    assert first == second


def test_different_ids_give_different_identities(ident: ModuleType) -> None:
    ids = [f"i-{n:017x}" for n in range(200)]
    identities = [ident.build_identity(i) for i in ids]
    assert len({d["sensor_id"] for d in identities}) == len(ids)
    assert len({d["device_info"]["serial_number"] for d in identities}) == len(ids)
    assert len({d["metadata"]["generation_seed"] for d in identities}) == len(ids)
    # The choices really vary with the id (not a constant city/manufacturer for everyone).
    assert len({d["location"]["city"] for d in identities}) > 10
    assert len({d["device_info"]["manufacturer"] for d in identities}) > 1
    assert len({d["device_info"]["firmware_version"] for d in identities}) > 10


def _iso(value: str) -> datetime.datetime:
    # The simulator's own parse: datetime.fromisoformat(v.replace("Z", "+00:00")).
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.mark.parametrize("instance_id", ["i-0abc123def4567890", "0123456789abcdef0123456789abcdef", "x"])
def test_every_field_is_valid_for_the_simulator(ident: ModuleType, instance_id: str) -> None:
    doc = ident.build_identity(instance_id)
    assert set(doc) == TOP_LEVEL
    loc, dev, dep, meta = doc["location"], doc["device_info"], doc["deployment"], doc["metadata"]
    assert set(loc) == {"city", "state", "coordinates", "timezone", "address"}
    assert set(dev) == {"manufacturer", "model", "firmware_version", "serial_number", "manufacture_date"}
    assert set(dep) == {"deployment_type", "installation_date", "height_meters", "orientation_degrees"}
    assert set(meta) == {"instance_id", "identity_generation_timestamp", "generation_seed", "sensor_type"}
    assert isinstance(doc["sensor_id"], str) and re.fullmatch(r"[A-Z]{1,4}_[A-Z0-9]{6}", doc["sensor_id"])
    assert loc["city"].strip() and isinstance(loc["state"], str)
    assert -90 <= loc["coordinates"]["latitude"] <= 90
    assert -180 <= loc["coordinates"]["longitude"] <= 180
    assert all(isinstance(v, float) for v in loc["coordinates"].values())
    zoneinfo.ZoneInfo(loc["timezone"])  # raises for a name the tz database does not know
    assert dev["manufacturer"] and dev["model"]
    assert isinstance(dev["firmware_version"], str) and SEMVER.match(dev["firmware_version"])
    manufactured = _iso(dev["manufacture_date"])
    installed = _iso(dep["installation_date"])
    generated = _iso(meta["identity_generation_timestamp"])
    assert manufactured < installed
    assert installed.date() == generated.date() and generated.tzinfo is not None
    assert 0 <= dep["orientation_degrees"] <= 360
    assert dep["height_meters"] > 0
    assert meta["instance_id"] == instance_id
    assert isinstance(meta["generation_seed"], int) and 0 <= meta["generation_seed"] < 2**53
    assert meta["sensor_type"]


def test_every_builtin_city_has_a_real_timezone_and_coordinates(ident: ModuleType) -> None:
    for _city, _state, lat, lon, tz in ident.CITIES:
        zoneinfo.ZoneInfo(tz)
        assert -90 <= lat <= 90 and -180 <= lon <= 180


def test_dates_do_not_depend_on_today(ident: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    before = ident.build_identity("i-dates")

    class FrozenDate(datetime.date):
        @classmethod
        def today(cls) -> "FrozenDate":
            return cls(2099, 1, 1)

    class FrozenDatetime(datetime.datetime):
        @classmethod
        def now(cls, tz: datetime.tzinfo | None = None) -> "FrozenDatetime":
            return cls(2099, 1, 1, tzinfo=tz)

    monkeypatch.setattr(ident.datetime, "date", FrozenDate)
    monkeypatch.setattr(ident.datetime, "datetime", FrozenDatetime)
    assert ident.build_identity("i-dates") == before


def test_empty_id_is_rejected(ident: ModuleType) -> None:
    with pytest.raises(ValueError):
        ident.build_identity("")


class _FakeImds(http.server.BaseHTTPRequestHandler):
    token = "fake-token-123"
    calls: list[tuple[str, str, dict[str, str]]] = []

    def do_PUT(self) -> None:  # noqa: N802 (http.server's naming)
        self.calls.append(("PUT", self.path, {k.lower(): v for k, v in self.headers.items()}))
        if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            self._reply(200, self.token)
        else:
            self._reply(400, "bad token request")

    def do_GET(self) -> None:  # noqa: N802
        self.calls.append(("GET", self.path, {k.lower(): v for k, v in self.headers.items()}))
        if self.headers.get("X-aws-ec2-metadata-token") != self.token:
            self._reply(401, "")  # IMDSv2 refuses requests without the session token
        elif self.path == "/latest/meta-data/instance-id":
            self._reply(200, "i-0fromimds000000001")
        else:
            self._reply(404, "")

    def _reply(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture()
def fake_imds() -> Iterator[str]:
    _FakeImds.calls = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeImds)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _closed_port_url() -> str:
    server = http.server.HTTPServer(("127.0.0.1", 0), _FakeImds)
    port = server.server_address[1]
    server.server_close()
    return f"http://127.0.0.1:{port}"


def test_imdsv2_puts_a_token_then_gets_the_id(ident: ModuleType, fake_imds: str, tmp_path: Path) -> None:
    value, source = ident.resolve_instance_id("i-given", True, fake_imds, 1.0, str(tmp_path / "none"))
    assert (value, source) == ("i-0fromimds000000001", "imds")
    assert [(c[0], c[1]) for c in _FakeImds.calls] == [
        ("PUT", "/latest/api/token"),
        ("GET", "/latest/meta-data/instance-id"),
    ]
    assert _FakeImds.calls[1][2].get("x-aws-ec2-metadata-token") == _FakeImds.token


def test_imds_disabled_never_calls_it(ident: ModuleType, fake_imds: str, tmp_path: Path) -> None:
    value, source = ident.resolve_instance_id("i-given", False, fake_imds, 1.0, str(tmp_path / "none"))
    assert (value, source) == ("i-given", "parameter")
    assert _FakeImds.calls == []


def test_falls_back_to_the_given_id_when_imds_is_down(ident: ModuleType, tmp_path: Path) -> None:
    value, source = ident.resolve_instance_id(" i-given ", True, _closed_port_url(), 0.5, str(tmp_path / "none"))
    assert (value, source) == ("i-given", "parameter")


def test_falls_back_to_machine_id(ident: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "machine-id"
    path.write_text("0123456789abcdef0123456789abcdef\n")
    value, source = ident.resolve_instance_id("", True, _closed_port_url(), 0.5, str(path))
    assert (value, source) == ("0123456789abcdef0123456789abcdef", "machine-id")


def test_no_source_at_all(ident: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    assert ident.resolve_instance_id("", False, "", 0.5, str(tmp_path / "empty")) == (None, "none")
