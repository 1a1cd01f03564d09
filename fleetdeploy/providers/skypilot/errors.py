"""SkyPilot's exceptions as one line with a hint, and as the kind of failure the watcher's backoff needs.

`sky` is passed in, never imported here: these run only after the provider has imported it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fleetdeploy.fleet.clouds import rules
from fleetdeploy.output.capture import strip_ansi
from fleetdeploy.providers.base import FailureKind

_MAX_ERROR_CHARS = 400


def is_sky_error(sky: Any, exc: BaseException, name: str) -> bool:
    cls = getattr(getattr(sky, "exceptions", None), name, None)
    return isinstance(cls, type) and isinstance(exc, cls)


def first_paragraph(text: str) -> str:
    """The first paragraph of an error text as one line, without terminal codes."""
    paragraph = strip_ansi(text).strip().split("\n\n", 1)[0]
    return " ".join(line.strip() for line in paragraph.splitlines() if line.strip())


def describe_error(sky: Any, exc: BaseException, clouds: Sequence[str] = ("aws",)) -> str:
    """One line for a SkyPilot failure, with a hint for the failures users actually meet; `clouds`: those the
    failed request was about (one cluster's cloud, or every cloud of the fleet)."""
    first = first_paragraph(str(exc))
    names = list(dict.fromkeys(str(c) for c in clouds)) or ["aws"]
    whose = rules(names[0]).title if len(names) == 1 else "cloud"
    check = f"sky check {' '.join(names)}"
    hints: list[tuple[str, str]] = [
        ("CloudUserIdentityError", f"{whose} credentials are missing or unusable (run: {check})"),
        ("NoCloudAccessError", f"no usable cloud access (run: {check})"),
        ("ClusterDoesNotExist", "cluster does not exist"),
    ]
    for name, hint in hints:
        if is_sky_error(sky, exc, name):
            text = f"{hint}: {first}" if first else hint
            return text[:_MAX_ERROR_CHARS]
    try:
        import requests  # noqa: PLC0415 - only needed to classify this error

        if isinstance(exc, requests.exceptions.ConnectionError):
            return "cannot reach the SkyPilot API server or a cloud's instance catalog (network?)"[:_MAX_ERROR_CHARS]
    except ImportError:
        pass
    return f"{type(exc).__name__}: {first}"[:_MAX_ERROR_CHARS]


def failure_kind(sky: Any, exc: BaseException) -> FailureKind:
    """What kind of failure a SkyPilot error is: the watcher's backoff depends on it."""
    if is_sky_error(sky, exc, "CloudUserIdentityError") or is_sky_error(sky, exc, "NoCloudAccessError"):
        return FailureKind.CREDENTIALS
    if is_sky_error(sky, exc, "ResourcesUnavailableError"):  # capacity or quota, over every candidate tried
        return FailureKind.CAPACITY
    if is_sky_error(sky, exc, "ApiServerConnectionError"):
        return FailureKind.TRANSIENT
    try:
        import requests  # noqa: PLC0415 - only needed to classify this error

        if isinstance(exc, requests.exceptions.RequestException):
            return FailureKind.TRANSIENT
    except ImportError:
        pass
    return FailureKind.UNKNOWN
