"""The fleet file's `ssh:` section: the operators' public keys the nodes accept, and this operator's own key.

`authorized_keys` entries are public key lines or paths of files holding them (an operator's `~/.ssh/id_*.pub`);
each becomes a checked `type base64 [comment]` line for the ssh_access role. `identity_file` is the private key this
operator logs in with: each operator's copy of the fleet file can say `~/.ssh/id_ed25519` and mean their own. The
provider's key (SkyPilot's, or the local fleet's) stays accepted beside them, outside the block the role manages.
"""

from __future__ import annotations

import base64
import binascii
import struct
import subprocess
from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator, model_validator

from fleetdeploy.fleet.files import check_private_file, check_readable_file, resolve_path
from fleetdeploy.fleet.fleetfile import KeyPathError as _At
from fleetdeploy.fleet.regions import StrictModel

# What sshd accepts in authorized_keys (sshd(8), AUTHORIZED_KEYS FILE FORMAT), without the certificate types.
KEY_TYPES = frozenset({
    "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
})
MAX_KEYS = 100


def _checked_key_line(line: str) -> str:
    """`type base64 [comment]` with the blob's own type equal to the named one; ValueError otherwise."""
    if "PRIVATE KEY" in line:
        raise ValueError("is a private key: give its public key (the .pub file)")
    words = line.split(None, 2)
    if not words or words[0] not in KEY_TYPES:
        shown = words[0][:40] if words else ""
        raise ValueError(f"'{shown}' is not a public key type ({', '.join(sorted(KEY_TYPES))}); "
                         "options before the key are not supported")
    if len(words) < 2:
        raise ValueError(f"{words[0]} key without its base64 data")
    try:
        blob = base64.b64decode(words[1], validate=True)
        (size,) = struct.unpack(">I", blob[:4])
        if size > len(blob) - 4:
            raise ValueError("shorter than its type's length")
        named = blob[4:4 + size].decode("ascii")
    except (binascii.Error, struct.error, UnicodeDecodeError, ValueError):
        raise ValueError(f"{words[0]} key whose data is not a public key's base64") from None
    if named != words[0]:
        raise ValueError(f"{words[0]} key whose data is a {named[:40]!r} key")
    comment = words[2].strip() if len(words) > 2 else ""
    return " ".join(w for w in (words[0], words[1], comment) if w)


def _lines_of(path: Path) -> list[str]:
    check_readable_file(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise ValueError(f"{path}: not a UTF-8 text file") from None
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise ValueError(f"{path}: holds no public key")
    return lines


def key_id(line: str) -> tuple[str, str]:
    """A key without its comment: what tells two lines of the same key apart from two keys."""
    words = line.split()
    return words[0], words[1]


def public_key_of(identity: Path) -> str:
    """The public key of a private key file: its `.pub` beside it, else what `ssh-keygen -y` derives."""
    beside = identity.with_name(identity.name + ".pub")
    if beside.is_file():
        return _checked_key_line(_lines_of(beside)[0])
    try:
        derived = subprocess.run(["ssh-keygen", "-y", "-P", "", "-f", str(identity)], capture_output=True,
                                 text=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        raise ValueError("cannot run ssh-keygen to read its public key (apt-get install openssh-client)") from None
    if derived.returncode != 0:
        raise ValueError(f"{identity}: cannot read its public key (passphrase-protected?); "
                         f"put it in {beside.name} beside it")
    return _checked_key_line(derived.stdout.strip())


class SshSpec(StrictModel):
    # Public key lines, or files holding them; the nodes' login user accepts each (the ssh_access role).
    authorized_keys: list[str] = Field(default_factory=list)
    # This operator's private key, offered before the provider's: set it to log in as yourself.
    identity_file: Path | None = None

    _resolve = field_validator("identity_file", mode="before")(resolve_path)

    @field_validator("authorized_keys", mode="before")
    @classmethod
    def _keys(cls, value: object, info: ValidationInfo) -> list[str]:
        if not isinstance(value, list):
            raise ValueError("must be a list of public keys or .pub files")
        keys: dict[tuple[str, str], str] = {}
        for index, entry in enumerate(value):
            if not isinstance(entry, str) or not entry.strip():
                raise _At(str(index), "must be a public key line or a .pub file's path")
            text = entry.strip()
            try:
                if KEY_TYPES & set(text.split()) or "PRIVATE KEY" in text or "\n" in text:
                    lines = [text]
                else:
                    lines = _lines_of(resolve_path(text, info) or Path(text))
                for line in lines:
                    checked = _checked_key_line(line)
                    keys.setdefault(key_id(checked), checked)  # the same key twice is listed once
            except ValueError as exc:
                raise _At(str(index), str(exc)) from None
        if len(keys) > MAX_KEYS:
            raise ValueError(f"at most {MAX_KEYS} keys (sshd reads the file at every login)")
        return list(keys.values())

    @model_validator(mode="after")
    def _identity(self) -> SshSpec:
        identity = self.identity_file
        if identity is None:
            return self
        try:
            # ssh itself refuses such a key ("UNPROTECTED PRIVATE KEY FILE"): say so before any connection.
            check_private_file(identity, others=0o077)
            public = public_key_of(identity)
        except ValueError as exc:
            raise _At("identity_file", str(exc)) from None
        if key_id(public) not in {key_id(line) for line in self.authorized_keys}:
            raise _At("identity_file", f"its public key is not in ssh.authorized_keys, so no node would accept it "
                                       f"(add {identity.name}.pub there)")
        return self
