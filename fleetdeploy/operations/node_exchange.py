"""Asking every node at once over one SSH exchange each (runs/exchange.py): the watcher's tick (convergence and
health) and `health` (health only) read nodes this way, with no Ansible run."""

from __future__ import annotations

from collections.abc import Callable

from fleetdeploy.operations.context import Context
from fleetdeploy.providers.base import Node
from fleetdeploy.runs.exchange import ExchangeResult, Exchanges, convergence_rule, exchange_argv, node_script, refused
from fleetdeploy.runs.ssh import CONTROL_DIR, refused_message


def ask_nodes(ctx: Context, names: dict[str, Node], convergence: bool = True,
              done: Callable[[str, ExchangeResult], None] | None = None, health: bool = True,
              ) -> dict[str, ExchangeResult]:
    """Every node's exchange at once (with its convergence probe unless `convergence` is False, and its health
    check unless `health` is False); a node whose host key changed says so in one line, as Ansible runs do. `done`
    hears each node's answer as it arrives."""
    known_hosts = ctx.inventory.known_hosts
    CONTROL_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
    script = node_script(ctx.inventory.config_digest(), convergence_rule() if convergence else None, health=health)
    answers: dict[str, ExchangeResult] = {}

    def answered(name: str, got: ExchangeResult) -> None:
        if refused(got):
            got = ExchangeResult(unreachable=True, message=refused_message(name, names[name].instance_id, known_hosts))
        answers[name] = got
        if done is not None:
            done(name, got)

    Exchanges(lambda node: exchange_argv(node, known_hosts, CONTROL_DIR), script).run(names, answered)
    return {name: answers[name] for name in names}
