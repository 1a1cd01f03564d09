"""API authorization with `API.Auth.Users` (pkg/authz entry_point/api_key/basic_auth authorizers, v1.9.3).

Without users the real node allows every request (its default policy), and so does the double. With users, each
path maps to a resource by longest prefix, a few are open, and the rest need a capability: `read:<resource>` for
GET, `write:<resource>` otherwise, `write:node` for paths no prefix names. API keys and passwords are secrets: they
never reach a log line or an error message the double writes itself.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
from typing import Any

from bacalhau_double.api import APIError, Authorize, Request
from bacalhau_double.config import ConfigError

ENDPOINT_RESOURCES = {
    "/api/v1/auth": "open", "/api/v1/version": "open",
    "/api/v1/agent": "agent", "/api/v1/agent/alive": "open", "/api/v1/agent/version": "open",
    "/api/v1/agent/authconfig": "open",
    "/api/v1/orchestrator/jobs": "job", "/api/v1/orchestrator/nodes": "node",
}
USER_KEYS = ("Alias", "Username", "Password", "APIKey", "Capabilities")
_ALNUM = re.compile(r"^[a-zA-Z0-9]+$")
_BCRYPT = re.compile(r"^\$2[abxy]?\$\d\d\$")


def _user_label(user: dict[str, Any], index: int) -> str:
    # The real node names key-only users "API key ending in ...<last 5>" in startup errors; the double never
    # prints any part of a key.
    return str(user.get("Alias") or user.get("Username") or f"#{index + 1} (API key user)")


def _validate(users: list[Any]) -> list[dict[str, Any]]:
    """entryPointAuthorizer.validateAllUsers, with its messages. Raises ConfigError."""
    checked: list[dict[str, Any]] = []
    seen_alias: dict[str, str] = {}
    seen_user: dict[str, str] = {}
    seen_keys: set[str] = set()
    for index, user in enumerate(users):
        if not isinstance(user, dict) or not all(isinstance(user.get(k, ""), str) for k in USER_KEYS[:4]):
            raise ConfigError(f"API.Auth.Users[{index}] must be a mapping of strings and Capabilities")
        unknown = sorted(set(user) - set(USER_KEYS))
        if unknown:
            raise ConfigError(f"unknown config key API.Auth.Users[{index}].{unknown[0]} (the real node would "
                              "silently ignore it)")
        who = _user_label(user, index)
        username, password, key = user.get("Username", ""), user.get("Password", ""), user.get("APIKey", "")
        if username and password and key:
            raise ConfigError(f"user '{who}' has both username/password and API key, must have only one "
                              "authentication method")
        if not (username and password) and not key:
            raise ConfigError(f"user '{who}' has neither username/password nor API key, must have one "
                              "authentication method")
        if username:
            if len(username.strip()) > 100:
                raise ConfigError(f"username for user '{who}' exceeds maximum length of 100 characters")
            if not username.strip():
                raise ConfigError(f"username for user '{who}' should not be empty")
            if not _ALNUM.match(username):
                raise ConfigError(f"username for user '{who}' must contain only alphanumeric characters (a-z, A-Z, "
                                  "0-9)")
        for what, secret, low in (("password", password, 10), ("API key", key, 20)):
            if secret and len(secret) < low:
                raise ConfigError(f"{what} for user '{who}' is too short, minimum length is {low} characters")
            if len(secret) > 255:
                raise ConfigError(f"{what} for user '{who}' exceeds maximum length of 255 characters")
        if password and _BCRYPT.match(password):
            raise ConfigError(f"password for user '{who}' is a bcrypt hash, which the test double cannot verify; "
                              "use a plain password in tests")
        capabilities = user.get("Capabilities") or []
        if not isinstance(capabilities, list) or not all(
                isinstance(c, dict) and isinstance(c.get("Actions") or [], list) for c in capabilities):
            raise ConfigError(f"API.Auth.Users[{index}].Capabilities must be a list of {{Actions: [...]}}")
        if not capabilities:
            raise ConfigError(f"user '{who}' has no capabilities defined, must have at least one capability")
        alias = str(user.get("Alias") or "")
        if alias and alias.lower() in seen_alias:
            raise ConfigError(f"duplicate alias detected: '{seen_alias[alias.lower()]}' and '{alias}' (aliases are "
                              "case-insensitive)")
        if username and username.lower() in seen_user:
            raise ConfigError(f"duplicate username detected: '{seen_user[username.lower()]}' and '{username}' "
                              "(usernames are case-insensitive)")
        if key and key in seen_keys:
            raise ConfigError(f"duplicate API key detected for user '{who}'")
        seen_alias.update({alias.lower(): alias} if alias else {})
        seen_user.update({username.lower(): username} if username else {})
        seen_keys.update({key} if key else set())
        checked.append(user)
    return checked


def resource_of(path: str) -> str:
    """MapEndpointToResourceType: the longest plain-string prefix wins; no match is ""."""
    matches = [prefix for prefix in ENDPOINT_RESOURCES if path.startswith(prefix)]
    return ENDPOINT_RESOURCES[max(matches, key=len)] if matches else ""


def required_capability(resource: str, method: str) -> str:
    verb = "read" if method == "GET" else "write"
    return f"{verb}:{resource}" if resource in ("node", "job", "agent") else "write:node"


def has_capability(user: dict[str, Any], required: str) -> bool:
    reading = required.startswith("read:")
    for capability in user.get("Capabilities") or []:
        for action in capability.get("Actions") or []:
            if action in ("*", required) or (reading and action == "read:*") or (not reading and action == "write:*"):
                return True
    return False


def _looks_like_jwt(token: str) -> bool:
    parts = token.split(".")
    if len(parts) != 3:
        return False
    try:
        for part in parts[:2]:
            if not isinstance(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))), dict):
                return False
    except (ValueError, binascii.Error):
        return False
    return True


def _unauthorized(reason: str) -> APIError:
    return APIError(401, "Request Unauthorized", "Unauthorized", "Authorizer",
                    "Unauthorized principal. Event has been recorded.", {"reason": reason})


def _forbidden(reason: str) -> APIError:
    return APIError(403, "Request Forbidden", "Forbidden", "Authorizer",
                    "Check if user have access to this resource. Event has been recorded.", {"reason": reason})


def make_authorizer(auth: dict[str, Any] | None) -> Authorize | None:
    """None when every request is allowed (no users), else a check returning the APIError to answer, if any."""
    auth = auth or {}
    if auth.get("AccessPolicyPath"):
        raise ConfigError("API.Auth.AccessPolicyPath: the test double cannot evaluate Rego policies")
    if (auth.get("Oauth2") or {}).get("ProviderID"):
        raise ConfigError("API.Auth.Oauth2: the test double does not support OAuth2/JWT authentication")
    users = auth.get("Users") or []
    if not isinstance(users, list):
        raise ConfigError("API.Auth.Users must be a list")
    if not users:
        return None
    try:
        checked = _validate(users)
    except ConfigError as exc:
        raise ConfigError(f"error initializing users: {exc}") from None
    by_key = {u["APIKey"]: u for u in checked if u.get("APIKey")}
    by_name = {u["Username"].lower(): u for u in checked if not u.get("APIKey")}

    def authorize(request: Request) -> APIError | None:
        resource = resource_of(request.path)
        if resource == "open":
            return None
        headers = request.headers.get_all("Authorization") or []
        if not headers:
            return _unauthorized("Missing Authorization header")
        header = headers[0]
        if header.startswith("Basic "):
            try:
                username, sep, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
            except (ValueError, binascii.Error):
                return _unauthorized("failed to decode basic auth credentials")
            if not sep:
                return _unauthorized("invalid basic auth credentials format")
            user = by_name.get(username.lower())
            if user is None or not hmac.compare_digest(user["Password"].encode(), password.encode()):
                return _unauthorized("invalid basic auth credentials")
            who = user.get("Alias") or user["Username"]
        elif header.startswith("Bearer "):
            token = header[7:]
            if _looks_like_jwt(token):
                return _unauthorized("OAuth2 authentication not configured on server")
            if not token:
                return _unauthorized("empty API key provided")
            user = next((u for k, u in by_key.items() if hmac.compare_digest(k.encode(), token.encode())), None)
            if user is None:
                return _unauthorized("invalid API key")
            # Sic: the real 403 names a key-only user by the key's last five characters.
            who = user.get("Alias") or user.get("Username") or f"API key ending in ...{token[-5:]}"
        else:
            return _unauthorized("unsupported authentication method")
        required = required_capability(resource, request.method)
        if has_capability(user, required):
            return None
        return _forbidden(f"user '{who}' does not have the required capability '{required}'")

    return authorize
