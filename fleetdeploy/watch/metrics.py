"""The watcher's metrics in Prometheus's conventions: a node_exporter textfile (`watch.metrics_textfile`, written
atomically every tick) and/or `/metrics` on 127.0.0.1 (`--metrics-port`), both from the same collector.

Counters live in the watcher's persisted state, so they survive restarts. Names (all labelled `fleet`):
fleet_watch_nodes_wanted / _up / _healthy {region}, fleet_watch_heals_total / _launches_total /
_launch_failures_total {region}, fleet_watch_drift_fixes_total, fleet_watch_configures_total {reason},
fleet_watch_alerts_total {kind}, fleet_watch_ticks_total, fleet_watch_tick_duration_seconds,
fleet_watch_last_good_tick_timestamp_seconds.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, start_http_server, write_to_textfile
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from fleetdeploy.watch.state import WatchState

_COUNTERS = {
    "fleet_watch_heals_total": ("Regions healed (launch, relaunch or resize that succeeded).", "region"),
    "fleet_watch_launches_total": ("Launches the watcher asked the provider for.", "region"),
    "fleet_watch_launch_failures_total": ("Launches that failed.", "region"),
    "fleet_watch_drift_fixes_total": ("Drifted nodes configured back to their roles.", ""),
    "fleet_watch_configures_total": ("Nodes the watcher configured, by reason.", "reason"),
    "fleet_watch_alerts_total": ("Alerts sent, by kind.", "kind"),
}


class WatchCollector(Collector):
    """Serves the latest snapshot; `update` swaps it in after every tick (thread-safe)."""

    def __init__(self, fleet: str) -> None:
        self._fleet = fleet
        self._lock = threading.Lock()
        self._counters: dict[str, float] = {}
        self._regions: dict[str, list[int]] = {}
        self._ticks = 0
        self._tick_seconds = 0.0
        self._last_good = 0.0

    def update(self, state: WatchState, tick_seconds: float) -> None:
        with self._lock:
            self._counters = dict(state.counters)
            self._regions = dict(state.history[-1].regions) if state.history else {}
            self._ticks = state.ticks
            self._tick_seconds = tick_seconds
            self._last_good = state.last_good_tick

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            counters, regions = dict(self._counters), dict(self._regions)
            ticks, tick_seconds, last_good = self._ticks, self._tick_seconds, self._last_good
        for index, (name, text) in enumerate((("fleet_watch_nodes_up", "Nodes up, per region."),
                                              ("fleet_watch_nodes_wanted", "Nodes the fleet file asks for."),
                                              ("fleet_watch_nodes_healthy", "Nodes healthy, per region."))):
            column = (0, 1, 2)[index]
            gauge = GaugeMetricFamily(name, text, labels=["fleet", "region"])
            for region, values in sorted(regions.items()):
                gauge.add_metric([self._fleet, region], float(values[column]))
            yield gauge
        for name, (text, label) in _COUNTERS.items():
            family = CounterMetricFamily(name, text, labels=["fleet", *([label] if label else [])])
            for key, value in sorted(counters.items()):
                metric, _, value_label = key.partition("|")
                if metric == name:
                    family.add_metric([self._fleet, *([value_label] if label else [])], value)
            yield family
        ticks_family = CounterMetricFamily("fleet_watch_ticks_total", "Ticks run.", labels=["fleet"])
        ticks_family.add_metric([self._fleet], float(ticks))
        yield ticks_family
        duration = GaugeMetricFamily("fleet_watch_tick_duration_seconds", "How long the last tick took.",
                                     labels=["fleet"])
        duration.add_metric([self._fleet], tick_seconds)
        yield duration
        good = GaugeMetricFamily("fleet_watch_last_good_tick_timestamp_seconds",
                                 "When the last tick that could read the fleet ended (Unix time).", labels=["fleet"])
        good.add_metric([self._fleet], last_good)
        yield good


class Metrics:
    def __init__(self, fleet: str, textfile: Path | None, port: int | None) -> None:
        self.collector = WatchCollector(fleet)
        self.registry = CollectorRegistry()
        self.registry.register(self.collector)
        self.textfile = textfile
        self.server = None
        if port is not None:
            self.server, _ = start_http_server(port, addr="127.0.0.1", registry=self.registry)

    def publish(self, state: WatchState, tick_seconds: float) -> None:
        self.collector.update(state, tick_seconds)
        if self.textfile is not None:
            write_to_textfile(str(self.textfile), self.registry)  # a temp file renamed into place

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
