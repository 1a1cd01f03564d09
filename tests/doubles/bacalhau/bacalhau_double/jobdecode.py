"""Decodes a PUT /api/v1/orchestrator/jobs body the way echo's binder and encoding/json do (apimodels.PutJobRequest).

Kept from Go: keys match fields case-insensitively, `null` leaves the zero value, a JSON value of the wrong type
is a 400 naming the field (the double leaves out echo's byte offset), a batch/service job without "Count" gets 1
(Job.UnmarshalJSON). Stricter than Go on purpose: an unknown key anywhere in the job is a 400, because the real
orchestrator silently drops it (a typo such as "Constraint" would run the job anywhere).
"""

from __future__ import annotations

import json
from typing import Any

from bacalhau_double.api import APIError, echo_error

Schema = dict[str, Any]
# Leaf types: "string", "int", "bool", "strings" ([]string), "smap" (map[string]string), "any" (interface{}),
# "amap" (map[string]interface{}), "network" (models.Network text), "jobstate" (JobStateType text).
SPEC: Schema = {"Type": "string", "Params": "amap"}
CONSTRAINT: Schema = {"Key": "string", "Operator": "string", "Values": "strings"}
INPUT_SOURCE: Schema = {"Source": SPEC, "Alias": "string", "Target": "string"}
RESULT_PATH: Schema = {"Name": "string", "Path": "string"}
TASK: Schema = {
    "Name": "string", "Engine": SPEC, "Publisher": SPEC, "Env": "smap", "Meta": "smap",
    "InputSources": [INPUT_SOURCE], "ResultPaths": [RESULT_PATH],
    "Resources": {"CPU": "string", "Memory": "string", "Disk": "string", "GPU": "string"},
    "Network": {"Type": "network", "Domains": "strings", "Ports": ["any"]},
    "Timeouts": {"ExecutionTimeout": "int", "QueueTimeout": "int", "TotalTimeout": "int"},
}
JOB: Schema = {
    "ID": "string", "Name": "string", "Namespace": "string", "Type": "string", "Priority": "int", "Count": "int",
    "Constraints": [CONSTRAINT], "Meta": "smap", "Labels": "smap", "Tasks": [TASK],
    "State": {"StateType": "jobstate", "Message": "string", "Details": "smap"},
    "Version": "int", "Revision": "int", "CreateTime": "int", "ModifyTime": "int",
}
PUT_JOB_REQUEST: Schema = {"Job": JOB, "Force": "bool", "IdempotencyToken": "string"}

NETWORK_TYPES = ["Default", "None", "Host", "Full", "HTTP", "Bridge"]
JOB_STATE_TYPES = ["Undefined", "Pending", "Queued", "Running", "Completed", "Failed", "Stopped"]
_GO_TYPES = {"string": "string", "int": "int", "bool": "bool", "strings": "[]string", "smap": "map[string]string",
             "amap": "map[string]interface {}", "network": "models.Network", "jobstate": "models.JobStateType"}


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object" if isinstance(value, dict) else "null"


def _type_error(expected: str, value: Any, field: str) -> APIError:
    # Job has its own UnmarshalJSON: Go reports the fields inside it relative to the job ("Count", "Tasks.Name").
    field = field.removeprefix("Job.")
    return echo_error(400, f"code=400, message=Unmarshal type error: expected={expected}, got={_json_kind(value)}, "
                           f"field={field}")


def unknown_key(path: str, key: str) -> APIError:
    return APIError(400, f"unknown field {key!r} in {path or 'the request'}: the real orchestrator silently ignores "
                         "it (the test double refuses it so that typos surface)", "BadRequest", "TestDouble")


def _leaf(kind: str, value: Any, field: str) -> Any:
    if value is None:
        return None
    if kind == "string" and isinstance(value, str):
        return value
    if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind == "any":
        return value
    if kind == "strings" and isinstance(value, list):
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise _type_error("string", item, f"{field}[{index}]")
        return list(value)
    if kind in ("smap", "amap") and isinstance(value, dict):
        if kind == "smap":
            for key, item in value.items():
                if not isinstance(item, str):
                    raise _type_error("string", item, f"{field}.{key}")
        return dict(value)
    if kind == "network" and isinstance(value, str):
        match = next((n for n in NETWORK_TYPES if n.lower() == value.strip().lower()), None)
        if match is None:
            raise echo_error(400, f"code=400, message=models.Network: unknown type '{value}'")
        return match
    if kind == "jobstate" and isinstance(value, str):
        # UnmarshalText quietly leaves an unknown name Undefined.
        return next((s for s in JOB_STATE_TYPES if s.lower() == value.strip().lower()), "Undefined")
    raise _type_error(_GO_TYPES.get(kind, kind), value, field)


def decode(value: Any, schema: Any, field: str) -> Any:
    """The decoded value: dicts keyed by the Go field names, None for null/absent pointers, slices and maps."""
    if isinstance(schema, list):
        if value is None:
            return None
        if not isinstance(value, list):
            raise _type_error("[]" + ("interface {}" if schema[0] == "any" else "struct"), value, field)
        items = [decode(item, schema[0], f"{field}[{index}]") for index, item in enumerate(value)]
        if isinstance(schema[0], dict) and any(item is None for item in items):
            # A null element is a nil pointer the real orchestrator would dereference (a panic, answered 500).
            raise APIError(400, f"{field} holds a null element", "BadRequest", "TestDouble")
        return items
    if isinstance(schema, dict):
        if value is None:
            return None
        if not isinstance(value, dict):
            raise _type_error("struct", value, field)
        by_lower = {name.lower(): name for name in schema}
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = key if key in schema else by_lower.get(key.lower())
            if name is None:
                raise unknown_key(field, key)
            out[name] = decode(item, schema[name], f"{field}.{name}" if field else name)
        return out
    return _leaf(schema, value, field)


def parse_put_job(body: bytes, content_type: str) -> tuple[dict[str, Any] | None, bool]:
    """(the decoded Job or None, Force), following echo's DefaultBinder for a PUT/POST body."""
    media = content_type.split(";")[0].strip().lower()
    if not body:
        return None, False  # BindBody skips an empty body: the job is nil and validation says so
    if media.startswith("application/x-www-form-urlencoded") or media.startswith("multipart/form-data"):
        return None, False  # form fields never fill the nested Job
    if not media.startswith("application/json"):
        if media.startswith(("application/xml", "text/xml")):
            raise APIError(400, "XML job bodies: the test double decodes JSON only", "BadRequest", "TestDouble")
        raise echo_error(400, "code=415, message=Unsupported Media Type")
    try:
        raw = json.loads(body)
    except ValueError as exc:
        raise echo_error(400, f"code=400, message=Syntax error: offset={getattr(exc, 'pos', 0) + 1}, "
                              f"error={exc.args[0] if exc.args else exc}") from None
    request = decode(raw, PUT_JOB_REQUEST, "")
    if request is None:
        return None, False
    job = request.get("Job")
    if job is not None and job.get("Type") in ("batch", "service") and job.get("Count") is None:
        job["Count"] = 1  # Job.UnmarshalJSON: an absent Count means one replica for batch and service jobs
    return job, bool(request.get("Force"))
