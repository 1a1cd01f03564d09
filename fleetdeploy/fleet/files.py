"""Files the fleet file names: path resolution, readability, and the token-file rules every token shares.

Messages name files, never their contents: a token file's text is a secret.
"""

from __future__ import annotations

import stat
from pathlib import Path

from pydantic import ValidationInfo

from fleetdeploy.errors import InputError


def check_readable_file(path: Path) -> None:
    """Raise ValueError (naming the file) unless `path` is a regular file this process can open."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ValueError(f"{path}: file not found") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{path}: not a regular file")
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read ({exc.strerror})") from None


def resolve_path(value: object, info: ValidationInfo) -> Path | None:
    """Resolve a path against the fleet file's directory (passed as validation context)."""
    if value is None or isinstance(value, Path):
        return value
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty file path")
    base = Path((info.context or {}).get("base_dir", "."))
    try:
        path = Path(value.strip()).expanduser()
    except RuntimeError:  # `~someone/` for a user this machine doesn't know
        raise ValueError("starts with ~user for an unknown user") from None
    return (path if path.is_absolute() else base / path).resolve()


def token_from_text(text: str) -> str:
    """The token a token file holds: its text without trailing whitespace, exactly what the bacalhau role's
    `lookup('file')` reads (it strips the end only). Anything that rule would read differently is refused."""
    token = text.rstrip()
    if not token:
        raise ValueError("file is empty")
    if any(c.isspace() for c in token):
        raise ValueError("the token must be one line without spaces (leading or inside)")
    return token


def check_private_file(path: Path, others: int = 0o044) -> None:
    """`path` must be a readable file none of whose `others` mode bits are set (a secret's file: no group or other
    read; ssh's private keys: no group or other bit at all, or ssh refuses them)."""
    check_readable_file(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & others:
        raise ValueError(f"{path}: readable by other users (mode {mode:04o}); run: chmod 600 {path}")


def check_token_file(path: Path) -> None:
    """A token file must be readable, private (no group/other read) and hold one token."""
    check_private_file(path)
    try:
        token_from_text(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def read_token(path: Path, what: str = "orchestrator token") -> str:
    """Read a token from its file (only where it is written onto a node or handed to a server)."""
    try:
        return token_from_text(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the {what} ({type(exc).__name__})") from None
    except ValueError as exc:
        raise InputError(f"{path}: {exc}") from None
