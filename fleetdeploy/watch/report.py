"""The fleet report page: one self-contained HTML file (inline CSS and SVG, no script, no CDN), so it opens offline
and can be mailed or served as it is. `deploy.py report` writes it from the watcher's saved state and event log;
`watch` rewrites it after every tick.

It shows the regions and nodes as the last tick saw them (health, orchestrator, versions, price per hour), the
last heal and drift events, and a timeline of the last day: nodes up against nodes wanted, per region.
"""

from __future__ import annotations

import html
from collections import deque
from collections.abc import Iterable
from pathlib import Path

from fleetdeploy.operations.options import DEFAULT_COST_DAYS
from fleetdeploy.output.plain import cost_text
from fleetdeploy.private_files import write_private
from fleetdeploy.watch.events import Event, EventLog, iso
from fleetdeploy.watch.state import HISTORY_SECONDS, WatchState

SHOWN_EVENTS = 20
REPORT_FILE = "report.html"  # in the fleet's state dir
EVENT_KINDS = frozenset({"node_lost", "heal_started", "heal_done", "heal_failed", "drift_fixed", "configure_failed",
                         "unhealthy", "recovered", "interruption_notice", "orchestrator_unreadable"})
_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1d2430;background:#fafbfc}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}
.meta{color:#5b6675}table{border-collapse:collapse;background:#fff;min-width:60%}
th,td{border:1px solid #d8dde4;padding:4px 10px;text-align:left;vertical-align:top}th{background:#eef1f5}
.healthy{color:#137333;font-weight:600}.unhealthy,.unreachable{color:#b3261e;font-weight:600}
.other{color:#8a5a00;font-weight:600}.num{text-align:right}svg{background:#fff;border:1px solid #d8dde4}
.legend span{display:inline-block;margin-right:14px}.empty{color:#5b6675;font-style:italic}
"""
_COLOURS = ["#1a73e8", "#e37400", "#188038", "#a142f4", "#d93025", "#12858f"]


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _price(value: float | None) -> str:
    return "-" if value is None else f"${value:.4f}/h"


def _cost(state: WatchState) -> str:
    if state.cost is None and not state.cost_basis:
        return "cost so far: not read yet"
    return cost_text(state.cost, DEFAULT_COST_DAYS, state.cost_basis, "" if state.cost is None else iso(state.cost_at))


def _regions(state: WatchState) -> str:
    latest = state.history[-1].regions if state.history else {}
    if not latest:
        return '<p class="empty">No tick has run yet.</p>'
    rows = "".join(
        f'<tr data-region="{_e(region)}"><td>{_e(region)}</td><td class="num">{up}</td><td class="num">{wanted}</td>'
        f'<td class="num">{healthy}</td><td class="num">{_e(_price(state.prices.get(region)))}</td></tr>'
        for region, (up, wanted, healthy) in sorted(latest.items()))
    return ('<table id="regions"><tr><th>region</th><th>up</th><th>wanted</th><th>healthy</th>'
            f'<th>price (as wanted)</th></tr>{rows}</table>')


def _nodes(state: WatchState) -> str:
    if not state.nodes:
        return '<p class="empty">No node was seen.</p>'
    rows = []
    for n in sorted(state.nodes, key=lambda n: (n.region, n.node)):
        css = n.health if n.health in ("healthy", "unhealthy", "unreachable") else "other"
        rows.append(f'<tr data-node="{_e(n.node)}"><td>{_e(n.node)}</td><td>{_e(n.region)}</td>'
                    f'<td class="{css}">{_e(n.health)}</td><td>{_e(n.orchestrator)}</td><td>{_e(n.bacalhau or "-")}'
                    f'</td><td>{_e(n.sensor or "-")}</td><td>{_e("; ".join(n.failing))}</td></tr>')
    return ('<table id="nodes"><tr><th>node</th><th>region</th><th>health</th><th>orchestrator</th>'
            f'<th>bacalhau</th><th>sensor</th><th>failing checks</th></tr>{"".join(rows)}</table>')


def _events(events: Iterable[Event]) -> str:
    shown = [e for e in events if e.kind in EVENT_KINDS][-SHOWN_EVENTS:]
    if not shown:
        return '<p class="empty">No heal or drift event yet.</p>'
    rows = "".join(f'<tr class="event" data-kind="{_e(e.kind)}"><td>{_e(e.at)}</td><td>{_e(e.kind)}</td>'
                   f'<td>{_e(e.subject)}</td><td>{_e(e.text)}</td></tr>' for e in reversed(shown))
    return f'<table id="events"><tr><th>when (UTC)</th><th>what</th><th>about</th><th>detail</th></tr>{rows}</table>'


def _timeline(state: WatchState, now: float) -> str:
    """Per region, nodes up (solid) and wanted (dashed) over the last day, as inline SVG."""
    samples = [s for s in state.history if now - s.at <= HISTORY_SECONDS]
    regions = sorted({r for s in samples for r in s.regions})
    if not samples or not regions:
        return '<p class="empty">No samples yet.</p>'
    width, height, pad = 900, 240, 36
    top = max(1, max(max(v[0], v[1]) for s in samples for v in s.regions.values()))
    # The last day, or since the first sample when the watcher has run for less than that.
    start = max(now - HISTORY_SECONDS, samples[0].at)
    span = max(now - start, 60.0)

    def x(at: float) -> float:
        return pad + (at - start) / span * (width - 2 * pad)

    def y(count: int) -> float:
        return height - pad - count / top * (height - 2 * pad)

    parts = [f'<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="nodes up and wanted per region, last 24 h">',
             f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#888"/>',
             f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#888"/>',
             f'<text x="{pad - 6}" y="{y(top) + 4:.1f}" text-anchor="end" font-size="11">{top}</text>',
             f'<text x="{pad - 6}" y="{height - pad + 4}" text-anchor="end" font-size="11">0</text>',
             f'<text x="{pad}" y="{height - 10}" font-size="11">{_e(iso(start))}</text>',
             f'<text x="{width - pad}" y="{height - 10}" text-anchor="end" font-size="11">{_e(iso(now))}</text>']
    legend = []
    for index, region in enumerate(regions):
        colour = _COLOURS[index % len(_COLOURS)]
        points = [(s.at, s.regions[region]) for s in samples if region in s.regions]
        up = " ".join(f"{x(at):.1f},{y(v[0]):.1f}" for at, v in points)
        wanted = " ".join(f"{x(at):.1f},{y(v[1]):.1f}" for at, v in points)
        parts.append(f'<polyline class="wanted" data-region="{_e(region)}" points="{wanted}" fill="none" '
                     f'stroke="{colour}" stroke-dasharray="5,4" stroke-width="1.5"/>')
        parts.append(f'<polyline class="up" data-region="{_e(region)}" points="{up}" fill="none" '
                     f'stroke="{colour}" stroke-width="2.5"/>')
        legend.append(f'<span style="color:{colour}">&#9632; {_e(region)}</span>')
    parts.append("</svg>")
    return ("".join(parts) + f'<p class="legend">{"".join(legend)}<span>solid: up, dashed: wanted</span></p>')


def write_report(path: Path, fleet: str, provider: str, state: WatchState, log: EventLog, now: float) -> None:
    recent: deque[Event] = deque(maxlen=SHOWN_EVENTS)
    recent.extend(e for e in log.read() if e.kind in EVENT_KINDS)
    write_private(path, render(fleet, provider, state, recent, now))


def render(fleet: str, provider: str, state: WatchState, events: Iterable[Event], now: float) -> str:
    last = iso(state.last_good_tick) if state.last_good_tick else "never"
    problems = "".join(f"<li>{_e(text)}</li>" for text in state.problems.values())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Fleet {_e(fleet)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style></head>
<body>
<h1 id="title">Fleet {_e(fleet)}</h1>
<p class="meta">provider {_e(provider)} &middot; page written {_e(iso(now))} &middot; last good tick {_e(last)}
 &middot; {state.ticks} tick(s)</p>
<p class="meta" id="cost">{_e(_cost(state))}</p>
<h2>Open problems</h2>
{f'<ul id="problems">{problems}</ul>' if problems else '<p class="empty" id="problems">None.</p>'}
<h2>Regions</h2>
{_regions(state)}
<h2>Nodes</h2>
{_nodes(state)}
<h2>Nodes up and wanted (the last day at most)</h2>
{_timeline(state, now)}
<h2>Last heal and drift events</h2>
{_events(events)}
</body></html>
"""
