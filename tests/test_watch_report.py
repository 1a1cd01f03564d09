"""The fleet report page, rendered by a real headless browser (Debian's chromium), asserted on its DOM."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from fleetdeploy.watch.events import Event, iso
from fleetdeploy.watch.report import render
from fleetdeploy.watch.state import NodeSnapshot, Sample, WatchState

NOW = 1_800_000_000.0
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Without these, Chromium reaches for Google's services at start (this machine must send nothing out).
QUIET = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class Dom(HTMLParser):
    """Elements by id and every element's attributes, from the DOM chromium serialised."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def having(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        return [a for t, a in self.elements if t == tag and all(a.get(k.replace("_", "-")) == v
                                                                 for k, v in attrs.items())]


def _state() -> WatchState:
    state = WatchState(ticks=1440, last_good_tick=NOW - 30)
    for minute in range(0, 24 * 60, 10):
        at = NOW - 24 * 3600 + minute * 60 + 30
        dip = 1 if 600 <= minute < 640 else 0  # a preemption in us-east-1, healed 40 minutes later
        state.history.append(Sample(at, {"us-east-1": [2 - dip, 2, 2 - dip], "eu-west-1": [1, 1, 1]}))
    state.nodes = [NodeSnapshot("demo-i-0aa", "us-east-1", "healthy", [], "CONNECTED APPROVED",
                                "ghcr.io/bacalhau-project/bacalhau:v1.9.3", "sensor:v1.17.0"),
                   NodeSnapshot("demo-i-0bb", "us-east-1", "unhealthy", ["sensor:readings (<not growing>)"],
                                "DISCONNECTED APPROVED", "ghcr.io/bacalhau-project/bacalhau:v1.9.3", "sensor:v1.17.0"),
                   NodeSnapshot("demo-i-0cc", "eu-west-1", "healthy", [], "CONNECTED APPROVED", "", "")]
    state.prices = {"us-east-1": 0.0250, "eu-west-1": None}
    state.problems = {"unhealthy:demo-i-0bb": "demo-i-0bb: still unhealthy after configure"}
    state.cost, state.cost_basis, state.cost_at = 1.2345, "estimate at list prices (SkyPilot's cost report)", NOW - 60
    return state


def _events() -> list[Event]:
    return [Event(iso(NOW - 3000), "node_lost", "demo-i-0zz", "demo-i-0zz (us-east-1) is gone"),
            Event(iso(NOW - 2990), "heal_started", "us-east-1", "us-east-1: heal"),
            Event(iso(NOW - 2900), "tick", "demo", "not an event the page lists"),
            Event(iso(NOW - 2800), "heal_done", "us-east-1", "us-east-1: relaunched; 1 new node(s)"),
            Event(iso(NOW - 600), "drift_fixed", "demo-i-0aa", "demo-i-0aa: drift fixed")]


@pytest.fixture(scope="module")
def dom(tmp_path_factory: pytest.TempPathFactory) -> Dom:
    if CHROMIUM is None:
        pytest.fail("chromium is not installed (scripts/setup.sh installs Debian's chromium)")
    page = tmp_path_factory.mktemp("report") / "report.html"
    page.write_text(render("demo", "skypilot", _state(), _events(), NOW))
    profile = page.parent / "profile"
    proc = subprocess.run([CHROMIUM, *QUIET, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "<html" in proc.stdout, proc.stderr[-3000:]
    parsed = Dom()
    parsed.feed(proc.stdout)
    return parsed


def test_the_page_shows_regions_nodes_and_problems(dom: Dom) -> None:
    assert "Fleet demo" in "".join(dom.text)
    assert [a["data-region"] for a in dom.having("tr") if "data-region" in a] == ["eu-west-1", "us-east-1"]
    assert [a["data-node"] for a in dom.having("tr") if "data-node" in a] == ["demo-i-0cc", "demo-i-0aa",
                                                                              "demo-i-0bb"]
    text = " ".join(dom.text)
    assert "$0.0250/h" in text and "DISCONNECTED APPROVED" in text and "still unhealthy after configure" in text
    # Text from the fleet is escaped, never markup.
    assert "sensor:readings (<not growing>)" in text and not dom.having("not")
    assert len(dom.having("td", **{"class": "unhealthy"})) == 1 and len(dom.having("td", **{"class": "healthy"})) == 2


def test_the_timeline_draws_up_and_wanted_for_each_region_over_the_day(dom: Dom) -> None:
    assert dom.having("svg", id="timeline")
    for region in ("us-east-1", "eu-west-1"):
        for line in ("up", "wanted"):
            (polyline,) = dom.having("polyline", **{"class": line, "data_region": region})
            points = [tuple(float(v) for v in p.split(",")) for p in polyline["points"].split()]
            assert len(points) == 24 * 6  # every sample of the day
            assert all(b[0] > a[0] for a, b in zip(points, points[1:], strict=False))  # in time order
    (up,) = dom.having("polyline", **{"class": "up", "data_region": "us-east-1"})
    heights = {float(p.split(",")[1]) for p in up["points"].split()}
    assert len(heights) == 2  # 2 nodes, and the 40 minutes with 1


def test_the_events_are_the_heal_and_drift_ones_newest_first(dom: Dom) -> None:
    assert [a["data-kind"] for a in dom.having("tr", **{"class": "event"})] == [
        "drift_fixed", "heal_done", "heal_started", "node_lost"]


def test_the_page_needs_nothing_from_the_network(dom: Dom) -> None:
    for _, attrs in dom.elements:
        for key in ("src", "href"):
            assert not attrs.get(key, "").startswith(("http:", "https:", "//")), attrs
    assert not dom.having("script") and not dom.having("link")


def test_an_empty_state_still_renders(tmp_path: Path) -> None:
    page = render("demo", "local", WatchState(), [], NOW)
    assert "No tick has run yet." in page and "No heal or drift event yet." in page and "No samples yet." in page
    assert "cost so far: not read yet" in page
    unreadable = render("demo", "skypilot", WatchState(cost_basis="cannot read SkyPilot's cost report: x"), [], NOW)
    assert "cost so far: unknown (cannot read SkyPilot&#x27;s cost report: x)" in unreadable


def test_the_page_shows_the_cost_so_far(dom: Dom) -> None:
    text = "".join(dom.text)
    assert dom.having("p", id="cost")
    assert ("cost so far: $1.23 over the last 30 days (estimate at list prices (SkyPilot's cost report); as of "
            f"{iso(NOW - 60)})") in text
