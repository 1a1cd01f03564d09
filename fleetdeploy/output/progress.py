"""Live per-item progress (one row per cluster or node) and the compact result tables."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

_STATE_STYLE = {
    "ok": "green",
    "done": "green",
    "healthy": "green",
    "unchanged": "green",
    "launched": "green",
    "relaunched": "green",
    "removed": "green",
    "resized": "green",
    "converged": "green",
    "changed": "yellow",
    "running": "cyan",
    "pending": "dim",
    "failed": "red",
    "unhealthy": "red",
    "unreachable": "red",
}


# Wide enough that no name, address or YAML line is ever cut or wrapped when output goes to a file or a pipe.
_UNBOUNDED_WIDTH = 100_000


def make_console(stream: TextIO) -> Console:
    """A console on `stream`: sized to the terminal, or never wrapping when `stream` is not a terminal."""
    if stream.isatty():
        return Console(file=stream, highlight=False, emoji=False)
    return Console(file=stream, highlight=False, emoji=False, width=_UNBOUNDED_WIDTH, soft_wrap=True)


def styled(state: str) -> Text:
    return Text(state, style=_STATE_STYLE.get(state, ""))


def _cell(value: object) -> Text:
    """Table cells are plain text: messages from Ansible or Docker may contain [brackets] Rich would parse."""
    return value if isinstance(value, Text) else Text(str(value))


@dataclass
class _Row:
    state: str = "pending"
    detail: str = ""
    counts: dict[str, int] = field(default_factory=dict)


class ProgressBoard:
    """A live table with one row per item (cluster or host), safe to update from worker threads.

    On a terminal the table redraws in place; elsewhere (CI, pipes) each state change is printed as one line,
    so logs still show per-node progress without redraw noise.
    """

    def __init__(self, console: Console, title: str, items: Iterable[str] = ()) -> None:
        self._console = console
        self._title = title
        self._rows: dict[str, _Row] = {item: _Row() for item in items}
        self._lock = threading.Lock()
        self._live: Live | None = None

    def __enter__(self) -> ProgressBoard:
        if self._console.is_terminal:
            # No stdout/stderr redirection: third-party prints must reach fd 1/2, where capture.py catches them.
            self._live = Live(self._render(), console=self._console, refresh_per_second=4, transient=False,
                              redirect_stdout=False, redirect_stderr=False)
            self._live.__enter__()
        else:
            self._console.print(Text(f"{self._title}:"))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.__exit__(None, None, None)
            self._live = None

    def update(self, item: str, state: str, detail: str = "") -> None:
        with self._lock:
            row = self._rows.setdefault(item, _Row())
            state_changed = row.state != state
            row.state, row.detail = state, detail
            if self._live is not None:
                self._live.update(self._render())
            elif state_changed:
                suffix = f" — {detail}" if detail else ""
                self._console.print(Text.assemble(f"  {item}: ", styled(state), suffix), highlight=False)

    def count(self, item: str, key: str) -> None:
        with self._lock:
            row = self._rows.setdefault(item, _Row())
            row.counts[key] = row.counts.get(key, 0) + 1

    def _render(self) -> Table:
        table = Table(title=self._title, title_justify="left", expand=False)
        table.add_column("item")
        table.add_column("state")
        table.add_column("tasks", justify="right")
        table.add_column("detail", overflow="ellipsis", no_wrap=True, max_width=70)
        for item, row in sorted(self._rows.items()):
            done = sum(row.counts.values())
            table.add_row(_cell(item), styled(row.state), _cell(done if done else ""), _cell(row.detail))
        return table


def print_table(console: Console, title: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(_cell(cell) for cell in row))
    console.print(table)
