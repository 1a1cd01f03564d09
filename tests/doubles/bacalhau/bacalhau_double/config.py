"""Loads and checks a Bacalhau v1.5+ config the way the double needs: stricter than the real node.

The real node silently ignores unknown keys (facts.md: Bacalhau node), which hides generator mistakes; the double
rejects them so tests catch those mistakes. Error messages name keys, never values: values may be tokens.
"""

from __future__ import annotations

import copy
import os
import re
from typing import Any

import yaml

TOP_LEVEL_KEYS = frozenset(
    {
        "API", "NameProvider", "DataDir", "StrictVersionMatch", "Orchestrator", "Compute", "Labels", "WebUI",
        "InputSources", "Publishers", "Engines", "ResultDownloaders", "JobDefaults", "JobAdmissionControl",
        "Logging", "UpdateConfig", "FeatureFlags", "DisableAnalytics",
    }
)

# Nested key sets from pkg/config/types (api.go, compute.go, orchestrator.go) of v1.5–v1.9.
# A dict value means "check the children too"; None means "accept whatever is below".
SCHEMA: dict[str, Any] = {
    "API": {
        "Host": None, "Port": None,
        "TLS": {k: None for k in ("CertFile", "KeyFile", "CAFile", "UseTLS", "Insecure", "SelfSigned", "AutoCert",
                                  "AutoCertCachePath")},
        # Users are checked by authz.py (its own messages); Methods only matter to `bacalhau auth` logins.
        "Auth": {"Methods": None, "AccessPolicyPath": None, "Users": None, "Oauth2": None},
    },
    "Compute": {
        "Enabled": None, "Orchestrators": None,
        "Network": {"AdvertisedAddress": None, "PortRangeStart": None, "PortRangeEnd": None},
        "Auth": {"Token": None},
        "Heartbeat": {"InfoUpdateInterval": None, "ResourceUpdateInterval": None, "Interval": None},
        "AllocatedCapacity": {"CPU": None, "Memory": None, "Disk": None, "GPU": None},
        "AllowListedLocalPaths": None,
        "TLS": {"CACert": None, "RequireTLS": None},
        "Env": {"AllowList": None},
        "NATS": None,
    },
    "Orchestrator": {
        "Enabled": None, "Host": None, "Port": None, "Advertise": None,
        "Auth": {"Token": None},
        "TLS": {"ServerKey": None, "ServerCert": None, "ServerTimeout": None, "CACert": None},
        "Cluster": {"Name": None, "Host": None, "Port": None, "Advertise": None, "Peers": None},
        "NodeManager": {"DisconnectTimeout": None, "ManualApproval": None},
        "Scheduler": {"WorkerCount": None, "QueueBackoff": None, "HousekeepingInterval": None,
                      "HousekeepingTimeout": None},
        "EvaluationBroker": {"VisibilityTimeout": None, "MaxRetryCount": None},
        "SupportReverseProxy": None,
    },
}

DURATION_KEYS = (
    "Compute.Heartbeat.InfoUpdateInterval", "Compute.Heartbeat.ResourceUpdateInterval", "Compute.Heartbeat.Interval",
    "Orchestrator.NodeManager.DisconnectTimeout", "Orchestrator.Scheduler.QueueBackoff",
    "Orchestrator.Scheduler.HousekeepingInterval", "Orchestrator.Scheduler.HousekeepingTimeout",
    "Orchestrator.EvaluationBroker.VisibilityTimeout", "UpdateConfig.Interval", "Logging.LogDebugInfoInterval",
)
BOOL_KEYS = ("Compute.Enabled", "Orchestrator.Enabled", "Compute.TLS.RequireTLS", "DisableAnalytics",
             "StrictVersionMatch", "WebUI.Enabled", "Orchestrator.NodeManager.ManualApproval")
PORT_KEYS = ("API.Port", "Orchestrator.Port")
NAME_PROVIDERS = ("hostname", "aws", "gcp", "uuid", "puuid")

# Go's time.ParseDuration grammar; "0" is the only unit-less value it accepts.
_GO_DURATION = re.compile(r"^[-+]?(0|((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+)$")

DEFAULTS: dict[str, Any] = {
    "API": {"Host": "0.0.0.0", "Port": 1234},
    "NameProvider": "puuid",
    "DataDir": os.path.expanduser("~/.bacalhau"),
    "Orchestrator": {"Enabled": False, "Host": "0.0.0.0", "Port": 4222},
    "Compute": {"Enabled": False, "Orchestrators": [], "Heartbeat": {"Interval": "15s"}},
    "Labels": {},
}

REDACTED = "********"  # the mask pkg/publicapi/endpoint/agent/util.go writes


class ConfigError(Exception):
    """A config the real node would not run with, or a mistake the double is meant to catch."""


def is_go_duration(value: object) -> bool:
    return isinstance(value, str) and bool(_GO_DURATION.match(value))


def get_path(cfg: dict[str, Any], dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _set_path(cfg: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = cfg
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"cannot set {dotted}: {part} is not a section")
    node[parts[-1]] = value


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


# The real node decodes with viper's weak typing: "1234" is a valid port and "false" a valid bool (Go's
# strconv.ParseBool spellings). Accept what it accepts, reject the rest, and normalise so the modes see real types.
_GO_BOOLS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
             "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}


def _as_bool(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    return _GO_BOOLS.get(value) if isinstance(value, str) else None


def _as_port(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    return value if isinstance(value, int) and 0 < value < 65536 else None


def _normalise(cfg: dict[str, Any]) -> dict[str, Any]:
    for dotted in BOOL_KEYS:
        if get_path(cfg, dotted) is not None:
            _set_path(cfg, dotted, _as_bool(get_path(cfg, dotted)))
    for dotted in PORT_KEYS:
        if get_path(cfg, dotted) is not None:
            _set_path(cfg, dotted, _as_port(get_path(cfg, dotted)))
    return cfg


def _check_keys(section: dict[str, Any], schema: dict[str, Any], prefix: str) -> None:
    for key, value in section.items():
        path = f"{prefix}.{key}"
        if key not in schema:
            raise ConfigError(f"unknown config key {path} (the real node would silently ignore it)")
        child = schema[key]
        if child is None or value is None:
            continue
        if not isinstance(value, dict):
            raise ConfigError(f"config key {path} must be a mapping")
        _check_keys(value, child, path)


def validate(cfg: dict[str, Any]) -> None:
    for key in cfg:
        if key not in TOP_LEVEL_KEYS:
            raise ConfigError(f"unknown top-level config key {key!r} (not in Bacalhau's v1.5+ key set)")
    for key, schema in SCHEMA.items():
        section = cfg.get(key)
        if section is None:
            continue
        if not isinstance(section, dict):
            raise ConfigError(f"config key {key} must be a mapping")
        _check_keys(section, schema, key)
    for dotted in DURATION_KEYS:
        value = get_path(cfg, dotted)
        if value is not None and not is_go_duration(value):
            raise ConfigError(f"{dotted} must be a Go duration string like \"15s\" or \"1m\"")
    for dotted in BOOL_KEYS:
        value = get_path(cfg, dotted)
        if value is not None and _as_bool(value) is None:
            raise ConfigError(f"{dotted} must be a boolean")
    for dotted in PORT_KEYS:
        value = get_path(cfg, dotted)
        if value is not None and _as_port(value) is None:
            raise ConfigError(f"{dotted} must be a port number")
    _validate_compute(cfg)
    provider = cfg.get("NameProvider")
    if provider is not None and provider not in NAME_PROVIDERS:
        raise ConfigError(f"NameProvider must be one of {', '.join(NAME_PROVIDERS)}")
    data_dir = cfg.get("DataDir")
    if data_dir is not None and (not isinstance(data_dir, str) or not os.path.isabs(data_dir)):
        raise ConfigError("DataDir must be an absolute path")
    labels = cfg.get("Labels")
    if labels is not None and (not isinstance(labels, dict)
                               or any(isinstance(v, (dict, list)) for v in labels.values())):
        raise ConfigError("Labels must be a map of string to string")


def _validate_compute(cfg: dict[str, Any]) -> None:
    orchestrators = get_path(cfg, "Compute.Orchestrators")
    if orchestrators is not None and (
        not isinstance(orchestrators, list) or not all(isinstance(o, str) and o for o in orchestrators)
    ):
        raise ConfigError("Compute.Orchestrators must be a list of endpoint strings")
    for dotted in ("Compute.Auth.Token", "Orchestrator.Auth.Token"):
        token = get_path(cfg, dotted)
        if token is not None and not isinstance(token, str):
            raise ConfigError(f"{dotted} must be a string")
    paths = get_path(cfg, "Compute.AllowListedLocalPaths")
    if paths is not None and (not isinstance(paths, list) or not all(isinstance(p, str) for p in paths)):
        raise ConfigError("Compute.AllowListedLocalPaths must be a list of strings")


def _parse_scalar(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def load(sources: list[str]) -> dict[str, Any]:
    """Merges config files and KEY=VALUE pairs (like `bacalhau serve -c`), in order, over the defaults."""
    user: dict[str, Any] = {}
    for source in sources:
        if "=" in source and not os.path.exists(source):
            key, _, value = source.partition("=")
            _set_path(user, key, _parse_scalar(value))
            continue
        try:
            with open(source, encoding="utf-8") as handle:
                data = yaml.safe_load(handle)
        except OSError as exc:
            raise ConfigError(f"cannot read config file {source}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            # Only the position: YAML error text quotes the offending line, which may hold a token.
            raise ConfigError(f"config file {source} is not valid YAML{where}") from None
        if data is None:
            continue
        if not isinstance(data, dict):
            raise ConfigError(f"config file {source} must contain a mapping")
        validate(data)
        user = deep_merge(user, data)
    validate(user)
    return _normalise(deep_merge(DEFAULTS, user))


def redacted(cfg: dict[str, Any]) -> dict[str, Any]:
    """The config as /api/v1/agent/config shows it: NATS tokens, user passwords and API keys masked."""
    safe = copy.deepcopy(cfg)
    for dotted in ("Compute.Auth.Token", "Orchestrator.Auth.Token"):
        if get_path(safe, dotted):
            _set_path(safe, dotted, REDACTED)
    users = get_path(safe, "API.Auth.Users")
    for user in users if isinstance(users, list) else []:
        for secret in ("Password", "APIKey"):
            if isinstance(user, dict) and user.get(secret):
                user[secret] = REDACTED
    return safe


_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration_seconds(value: str) -> float:
    """Seconds in a Go duration string (already validated)."""
    sign = -1.0 if value.startswith("-") else 1.0
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)", value):
        total += float(number) * _DURATION_UNITS[unit]
    return sign * total
