"""models.NodeInfo as the real node builds it (pkg/node/node.go, pkg/compute/node_info_decorator.go, v1.9.3).

Dicts are built in the Go structs' field order, so the JSON the API sends has the real key order.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
from typing import Any

from bacalhau_double import VERSION
from bacalhau_double.config import ConfigError, get_path
from bacalhau_double.wire import sorted_map

# The v1.9.3 tag's commit and its commit time: what version.Get() reports from the build info of the release.
GIT_COMMIT = "2b0ed139efadcb4a7fbce49b819613f11eeb3f2d"
BUILD_DATE = "2026-08-09T23:18:47Z"
SUPPORTED_PROTOCOLS = ["bprotocol/v2", "ncl/v1"]
# What a stock v1.9.3 compute node offers (provider keys are lower-cased; the real node lists them in map order,
# which is not stable: sorted here). Only installed providers are listed: "docker" needs a reachable engine, the
# local storages need Compute.AllowListedLocalPaths (compute.py narrows the lists).
EXECUTION_ENGINES = ["docker", "wasm"]
PUBLISHERS = ["local", "noop"]
STORAGE_SOURCES = ["inline", "local", "localdirectory", "urldownload"]
LOCAL_STORAGE_SOURCES = ("local", "localdirectory")
DEFAULT_ALLOCATION = {"CPU": "80%", "Memory": "80%", "Disk": "80%", "GPU": "100%"}  # pkg/config/defaults.go


def go_arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(machine, machine)


def build_version() -> dict[str, Any]:
    """models.BuildVersionInfo (also the body of /api/v1/agent/version)."""
    major, minor = VERSION.lstrip("v").split(".")[:2]
    return {"Major": major, "Minor": minor, "GitVersion": VERSION, "GitCommit": GIT_COMMIT, "BuildDate": BUILD_DATE,
            "GOOS": "linux", "GOARCH": go_arch()}


def _go_label_value(value: Any) -> str:
    # viper decodes YAML scalars into map[string]string with Go's spelling (true, not True).
    return str(value).lower() if isinstance(value, bool) else str(value)


def node_labels(cfg: dict[str, Any], name: str) -> dict[str, str]:
    """Config labels, then os_type/os_arch, then name: later providers win (MergeLabelsInOrder)."""
    labels = {str(k): _go_label_value(v) for k, v in (cfg.get("Labels") or {}).items()}
    labels.update({"os_type": "linux", "os_arch": go_arch(), "name": name})
    return labels


def resources(cpu: float = 0.0, memory: int = 0, disk: int = 0, gpu: int = 0) -> dict[str, Any]:
    """models.Resources: every field is omitempty, so an empty capacity is {}."""
    out: dict[str, Any] = {}
    if cpu:
        out["CPU"] = float(cpu)
    if memory:
        out["Memory"] = int(memory)
    if disk:
        out["Disk"] = int(disk)
    if gpu:
        out["GPU"] = int(gpu)
    return out


_BYTE_UNITS = {"": 1, "b": 1}
for _i, _p in enumerate("kmgtpe", start=1):
    _BYTE_UNITS.update({_p: 1000 ** _i, _p + "b": 1000 ** _i, _p + "i": 1024 ** _i, _p + "ib": 1024 ** _i})


def parse_bytes(text: str) -> int:
    """go-humanize ParseBytes: "4GB", "4 GiB", "512mi", "1,000" (case-insensitive)."""
    match = re.fullmatch(r"\s*([\d.,]+)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _BYTE_UNITS:
        raise ValueError(text)
    return int(float(match.group(1).replace(",", "")) * _BYTE_UNITS[match.group(2).lower()])


def _scaled(key: str, raw: str, total: float) -> float:
    if raw.endswith("%"):
        percent = float(raw[:-1])
        if not 0 <= percent <= 100:
            raise ValueError(f"{key} percentage must be between 0% and 100%")
        return total * percent / 100
    if key == "CPU":
        return float(raw[:-1]) / 1000 if raw.endswith("m") else float(raw)
    if key == "GPU":
        if not raw.isdigit():
            raise ValueError(raw)
        return int(raw)
    return parse_bytes(raw)


def _system_totals(data_dir: str) -> dict[str, float]:
    memory = 0
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    memory = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {"CPU": float(os.cpu_count() or 1), "Memory": memory, "Disk": shutil.disk_usage(data_dir).free, "GPU": 0}


def allocated_capacity(cfg: dict[str, Any]) -> dict[str, Any]:
    """Compute.AllocatedCapacity applied to this machine (ResourceScaler.ToResource). Raises ConfigError."""
    allocation = {**DEFAULT_ALLOCATION, **{k: str(v) for k, v in (get_path(cfg, "Compute.AllocatedCapacity") or {})
                                           .items() if v not in (None, "")}}
    totals = _system_totals(str(cfg["DataDir"]))
    values: dict[str, float] = {}
    for key in ("CPU", "Memory", "Disk", "GPU"):
        try:
            values[key] = _scaled(key, allocation[key].strip(), totals[key])
        except ValueError:
            raise ConfigError(f"Compute.AllocatedCapacity.{key} is not a valid amount or percentage") from None
    if values["GPU"] < 1 and totals["GPU"] >= 1:  # a percentage never scales an existing GPU down to zero
        values["GPU"] = 1
    return resources(values["CPU"], int(values["Memory"]), int(values["Disk"]), int(values["GPU"]))


def compute_node_info(capacity: dict[str, Any] | None = None, address: str = "", engines: list[str] | None = None,
                      storages: list[str] | None = None) -> dict[str, Any]:
    """models.ComputeNodeInfo; a Requester carries the zero value (nil lists, empty capacities)."""
    compute = capacity is not None
    return {
        "ExecutionEngines": list(EXECUTION_ENGINES if engines is None else engines) if compute else None,
        "Publishers": list(PUBLISHERS) if compute else None,
        "StorageSources": list(STORAGE_SOURCES if storages is None else storages) if compute else None,
        "MaxCapacity": dict(capacity or {}),
        "QueueCapacity": {},
        "AvailableCapacity": dict(capacity or {}),
        "MaxJobRequirements": dict(capacity or {}),
        "RunningExecutions": 0,
        "EnqueuedExecutions": 0,
        "address": address,
    }


def node_info(cfg: dict[str, Any], name: str, node_type: str, capacity: dict[str, Any] | None = None,
              engines: list[str] | None = None, storages: list[str] | None = None) -> dict[str, Any]:
    """models.NodeInfo of this node: "Compute" (with capacity and its installed engines/storages) or "Requester"."""
    address = str(get_path(cfg, "Compute.Network.AdvertisedAddress") or "") if node_type == "Compute" else ""
    return {
        "NodeID": name,
        "NodeType": node_type,
        "Labels": sorted_map(node_labels(cfg, name)),
        "SupportedProtocols": list(SUPPORTED_PROTOCOLS),
        "ComputeNodeInfo": compute_node_info(capacity if node_type == "Compute" else None, address, engines, storages),
        "BacalhauVersion": build_version(),
    }


def server_headers() -> dict[str, str]:
    """ServerHeader middleware: the build, on every response that passed authorization."""
    version = build_version()
    return {"X-Bacalhau-Git-Version": version["GitVersion"], "X-Bacalhau-Git-Commit": version["GitCommit"],
            "X-Bacalhau-Build-Date": BUILD_DATE.replace("T", " ").replace("Z", " +0000 UTC"),
            "X-Bacalhau-Build-OS": version["GOOS"], "X-Bacalhau-Arch": version["GOARCH"]}
