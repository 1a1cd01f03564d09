"""`deploy.py import-legacy`: the fleet file on stdout (checked by the fleet model first), the notes on stderr."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from rich.console import Console
from rich.text import Text

from fleetdeploy.errors import InputError
from fleetdeploy.fleet.model import load_fleet
from fleetdeploy.migrate.legacy import LegacyImport, import_legacy
from fleetdeploy.operations.options import ImportLegacyOptions, OutputFormat


def check_fleet_text(made: LegacyImport, source: Path) -> None:
    """The fleet file must pass the same checks as every fleet file (`plan` runs them): InputError otherwise."""
    with tempfile.TemporaryDirectory(prefix="fleetdeploy-import-") as work:
        candidate = Path(work) / "fleet.yaml"
        candidate.write_text(made.text(), encoding="utf-8")
        try:
            load_fleet(candidate)
        except InputError as exc:
            problem = str(exc).replace(f"{candidate}: ", "")
            raise InputError(f"the fleet file made from {source} does not pass its checks: {problem}") from None


def import_legacy_command(options: ImportLegacyOptions, output: OutputFormat, console: Console,
                          err_console: Console) -> int:
    made = import_legacy(options.config, options.files_dir, options.name)
    check_fleet_text(made, options.config)
    if output is OutputFormat.JSON:
        console.out(json.dumps({"fleet": made.fleet, "notes": made.notes}, indent=2), highlight=False)
        return 0
    console.out(made.text(), highlight=False, end="")
    for note in made.notes:
        err_console.print(Text(f"note: {note}", style="yellow"), highlight=False, soft_wrap=True)
    return 0
