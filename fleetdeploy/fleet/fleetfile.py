"""Reading the fleet file's YAML and turning pydantic errors into one line that names the key path.

Kept apart from model.py (the models) so each module stays small. Messages never echo input values:
a user may have pasted a secret into the wrong key.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Hashable
from pathlib import Path
from typing import Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from fleetdeploy.errors import InputError
from fleetdeploy.jsondoc import JSONObject


class KeyPathError(ValueError):
    """A validation error below the field that raised it; `path` is appended to pydantic's location."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, object]:
        seen: set[Hashable] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key}'", key_node.start_mark)
            seen.add(key)
        return dict(super().construct_mapping(node, deep=deep))


# A fleet file is a page of YAML; anything bigger (or endless, like /dev/zero) is not one.
MAX_FLEET_FILE_BYTES = 1 << 20


def _read_capped(path: Path) -> str:
    with path.open("rb") as handle:
        data = handle.read(MAX_FLEET_FILE_BYTES + 1)
    if len(data) > MAX_FLEET_FILE_BYTES:
        raise InputError(f"{path}: larger than {MAX_FLEET_FILE_BYTES // 1024} KiB: not a fleet file")
    if b"\0" in data:
        line = data[: data.index(b"\0")].count(b"\n") + 1
        raise InputError(f"{path}: contains a NUL byte at line {line}: not a text file")
    return data.decode("utf-8")


def read_mapping(path: Path) -> JSONObject:
    """Read a YAML file that must hold a mapping; InputError (one line) otherwise."""
    try:
        text = _read_capped(path)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a fleet file") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read file ({exc.strerror})") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InputError(f"{path}: YAML syntax error{where}: {exc.problem or exc.context}") from None
    except yaml.YAMLError:
        raise InputError(f"{path}: YAML syntax error") from None
    except RecursionError:
        raise InputError(f"{path}: nested too deeply to be a fleet file") from None
    if data is None:
        raise InputError(f"{path}: file is empty")
    if not isinstance(data, dict):
        raise InputError(f"{path}: the top level must be a mapping of keys (got {type(data).__name__})")
    return data


def _unwrap(annotation: object) -> object:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [arg for arg in get_args(annotation) if arg is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def _model_at(root: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model class that validates the mapping at `loc` (dict values are stepped through)."""
    current: object = root
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = _unwrap(field.annotation)
        elif get_origin(current) is dict:
            current = _unwrap(get_args(current)[1])
        else:
            return None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _message(error: ErrorDetails, root: type[BaseModel]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        model = _model_at(root, tuple(error["loc"][:-1]))
        allowed = list(model.model_fields) if model else []
        close = difflib.get_close_matches(str(error["loc"][-1]), allowed, n=1)
        return "unknown key" + (f" (did you mean '{close[0]}'?)" if close else "")
    simple = {
        "missing": "required key missing",
        "string_type": "must be a string",
        "int_type": "must be a whole number",
        "bool_type": "must be true or false",
        "dict_type": "must be a mapping",
        "model_type": "must be a mapping",
        "model_attributes_type": "must be a mapping",
    }
    if kind in simple:
        return simple[kind]
    if kind == "greater_than_equal":
        return f"must be >= {ctx.get('ge')}"
    if kind == "less_than_equal":
        return f"must be <= {ctx.get('le')}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}"
    text = str(ctx["error"]) if "error" in ctx else str(error["msg"])
    return text.splitlines()[0] if text else kind


def one_line(exc: ValidationError, root: type[BaseModel]) -> str:
    """`key.path: message` for the first error pydantic found."""
    errors = exc.errors(include_input=False)
    # A misspelt key also shows up as a missing one; the unknown key (with its suggestion) is the real cause.
    error = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = [str(part) for part in error["loc"]]
    if loc and loc[-1] == "[key]":  # pydantic's marker for a bad mapping key
        return f"{'.'.join(loc[:-1])}: keys must be strings (quote it)"
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, KeyPathError):
        loc.append(cause.path)
    where = ".".join(loc)
    return f"{where}: {_message(error, root)}" if where else _message(error, root)
