"""Each operator's own SSH key: the fleet file's `ssh:` section (checked before anything runs), the keys offered in
order (operator's, then the provider's) by every way the tool connects, and the role's variables in the inventory.
The keys are real ones from ssh-keygen; sshd's verdict on them is the molecule scenario's and the E2E suite's."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from fleetdeploy.errors import InputError
from fleetdeploy.fleet.model import Fleet, load_fleet
from fleetdeploy.nodelocal.node_inventory import node_files
from fleetdeploy.operations.fleet_inventory import FleetInventory, nodes_in
from fleetdeploy.providers.base import Node
from fleetdeploy.runs.exchange import exchange_argv
from fleetdeploy.runs.inventory import build_inventory, write_inventory

BASE = {
    "name": "keys",
    "regions": {"us-east-1": {"count": 1}},
    "orchestrator": {"endpoint": "orch.example.com", "token_file": "token"},
    "sensor": {"version": "1.2.3"},
}
PROVIDER_KEY = "/state/keys/sky-key"


def keygen(path: Path, comment: str) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True)
    return path.with_name(path.name + ".pub").read_text().strip()


@pytest.fixture()
def keys(tmp_path: Path) -> dict[str, str]:
    token = tmp_path / "token"
    token.write_text("tok-0123456789\n")
    token.chmod(0o600)
    return {name: keygen(tmp_path / name, f"{name}@test") for name in ("alice", "bob")}


def load(directory: Path, ssh: object) -> Fleet:
    path = directory / "fleet.yaml"
    path.write_text(yaml.safe_dump({**BASE, "ssh": ssh}))
    return load_fleet(path)


def test_keys_are_lines_or_pub_files_checked_and_listed_once(tmp_path: Path, keys: dict[str, str]) -> None:
    fleet = load(tmp_path, {"authorized_keys": ["alice.pub", keys["bob"], f"  {keys['alice']}  "],
                            "identity_file": "alice"})
    assert fleet.ssh.authorized_keys == [keys["alice"], keys["bob"]]
    assert fleet.ssh.identity_file == tmp_path / "alice"
    assert load(tmp_path, {}).ssh.authorized_keys == []


@pytest.mark.parametrize(("entry", "problem"), [
    ("missing.pub", "ssh.authorized_keys.0: .*missing.pub: file not found"),
    ("alice", "ssh.authorized_keys.0: is a private key: give its public key"),
    ("ssh-ed25519", "ssh.authorized_keys.0: ssh-ed25519 key without its base64 data"),
    ("ssh-ed25519 bm90IGEga2V5 x", "ssh.authorized_keys.0: ssh-ed25519 key whose data is not a public key's"),
    ("command=\"ls\" ssh-ed25519 AAAA", "ssh.authorized_keys.0: 'command=\"ls\"' is not a public key type"),
    ("", "ssh.authorized_keys.0: must be a public key line"),
])
def test_a_bad_key_is_one_line_naming_the_entry(tmp_path: Path, keys: dict[str, str], entry: str, problem: str) -> None:
    with pytest.raises(InputError, match=problem):
        load(tmp_path, {"authorized_keys": [entry]})


def test_a_key_whose_data_is_another_type_is_refused(tmp_path: Path, keys: dict[str, str]) -> None:
    data = keys["alice"].split()[1]
    with pytest.raises(InputError, match="ssh-rsa key whose data is a 'ssh-ed25519' key"):
        load(tmp_path, {"authorized_keys": [f"ssh-rsa {data}"]})


def test_the_identity_must_be_private_readable_and_listed(tmp_path: Path, keys: dict[str, str]) -> None:
    with pytest.raises(InputError, match="ssh.identity_file: its public key is not in ssh.authorized_keys"):
        load(tmp_path, {"authorized_keys": [keys["bob"]], "identity_file": "alice"})
    (tmp_path / "alice").chmod(0o644)
    with pytest.raises(InputError, match=r"ssh.identity_file: .*alice: readable by other users \(mode 0644\)"):
        load(tmp_path, {"authorized_keys": [keys["alice"]], "identity_file": "alice"})
    (tmp_path / "alice").chmod(0o600)
    with pytest.raises(InputError, match="ssh.identity_file: .*nobody: file not found"):
        load(tmp_path, {"authorized_keys": [keys["alice"]], "identity_file": "nobody"})
    with pytest.raises(InputError, match="ssh.identity_fil"):
        load(tmp_path, {"identity_fil": "alice"})
    # Without a .pub beside it, ssh-keygen derives the public key; a passphrase keeps it unknown: one line.
    (tmp_path / "alice.pub").unlink()
    assert load(tmp_path, {"authorized_keys": [keys["alice"]], "identity_file": "alice"}).ssh.identity_file
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "pass phrase", "-f", str(tmp_path / "locked")],
                   check=True)
    (tmp_path / "locked.pub").unlink()
    with pytest.raises(InputError, match="cannot read its public key .passphrase-protected.*locked.pub"):
        load(tmp_path, {"authorized_keys": [keys["alice"]], "identity_file": "locked"})


def _node(operator: str | None = None) -> Node:
    return Node(instance_id="i-0abc", cluster="keys-us-east-1", region="us-east-1", zone=None, host="198.51.100.7",
                port=22, user="ubuntu", key_file=PROVIDER_KEY, spot=True, operator_key_file=operator)


def test_every_connection_offers_the_operators_key_then_the_providers(tmp_path: Path, keys: dict[str, str]) -> None:
    fleet = load(tmp_path, {"authorized_keys": ["alice.pub"], "identity_file": "alice"})
    node = _node(str(fleet.ssh.identity_file))
    argv = exchange_argv(node, tmp_path / "known_hosts", tmp_path)
    offered = [argv[i + 1] for i, arg in enumerate(argv) if arg == "-i"]
    assert offered == [str(tmp_path / "alice"), PROVIDER_KEY] and "IdentitiesOnly=yes" in argv
    assert _node().identity_files == (PROVIDER_KEY,)
    assert _node(PROVIDER_KEY).identity_files == (PROVIDER_KEY,)

    inventory = build_inventory(fleet, [node], known_hosts=tmp_path / "known_hosts")
    group = inventory["all"]["children"]["fleet_keys"]  # type: ignore[index]
    host = group["children"]["keys_us_east_1"]["hosts"]["keys-i-0abc"]  # type: ignore[index]
    # Ansible puts ansible_ssh_private_key_file's IdentityFile before the extra args': the operator's goes first.
    assert host["ansible_ssh_private_key_file"] == str(tmp_path / "alice")  # type: ignore[index]
    assert host["ansible_ssh_extra_args"].endswith(f"-o IdentityFile={PROVIDER_KEY}")  # type: ignore[index]
    assert host["fleet_login_user"] == "ubuntu"  # type: ignore[index]
    assert group["vars"]["ssh_access_authorized_keys"] == [keys["alice"]]  # type: ignore[index]

    # Read back from the file, the node is the same; a node-local run gets the keys and the user, not the paths.
    path = tmp_path / "inventory.yml"
    write_inventory(path, inventory)
    assert nodes_in(path) == [node]
    local = yaml.safe_load(node_files(inventory, "keys-i-0abc", "r1").inventory)
    local_host = local["all"]["children"]["fleet_keys"]["children"]["keys_us_east_1"]["hosts"]["keys-i-0abc"]
    assert "fleet_node_key_file" not in local_host and "ansible_ssh_private_key_file" not in local_host
    assert local_host["fleet_login_user"] == "ubuntu"


def test_the_keys_are_part_of_the_config_digest(tmp_path: Path, keys: dict[str, str]) -> None:
    def digest(fleet: Fleet) -> object:
        return build_inventory(fleet, [_node()])["all"]["children"]["fleet_keys"]["vars"]["fleet_config_digest"]  # type: ignore[index]

    assert digest(load(tmp_path, {"authorized_keys": ["alice.pub"]})) != digest(load(tmp_path, {}))


class _Provider:
    def __init__(self, nodes: list[Node]) -> None:
        self._nodes = nodes

    def nodes(self) -> list[Node]:
        return self._nodes

    def extra_inventory_vars(self) -> dict[str, object]:
        return {}


def test_the_inventory_gives_the_providers_nodes_the_operators_key(tmp_path: Path, keys: dict[str, str]) -> None:
    fleet = load(tmp_path, {"authorized_keys": ["alice.pub"], "identity_file": "alice"})
    inventory = FleetInventory(fleet, lambda: _Provider([_node()]), tmp_path / "inv.yml")  # type: ignore[arg-type,return-value]
    (refreshed,) = inventory.refresh()
    assert refreshed == replace(_node(), operator_key_file=str(tmp_path / "alice")) == inventory.recorded()[0]
