"""Entry point: CONFIG_FILE + IDENTITY_FILE -> readings in SQLite for run_time_seconds, then exit 0.

Every fatal error is logged and the process exits 0, like the real simulator (facts.md: Sensor): a restart policy of
`on-failure` never fires, and deployments must read the log, not the exit status.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time

from sensor_double.config import SensorConfigError, load_config
from sensor_double.identity import IdentityError, load_identity
from sensor_double.monitor import MonitorState, start_monitor
from sensor_double.store import ReadingWriter, reset_database

log = logging.getLogger("sensor_simulator")


def _stop(signum: int, _frame: object) -> None:
    log.info("received signal %d, stopping", signum)
    raise SystemExit(0)


def run() -> None:
    config_file = os.environ.get("CONFIG_FILE", "config/config.yaml")
    identity_file = os.environ.get("IDENTITY_FILE", "config/node_identity.json")
    config = load_config(config_file)
    logging.getLogger().setLevel(config.log_level)
    identity = load_identity(identity_file)
    preserve = os.environ.get("PRESERVE_EXISTING_DB", "false").lower() == "true"
    reset_database(config.database_path, preserve)
    writer = ReadingWriter(config.database_path, identity)
    state = MonitorState(str(identity["sensor_id"]), config.database_path)
    start_monitor(config.monitor_host, config.monitor_port, state)
    log.info("sensor %s writing %s readings/s to %s for %ss; monitor on %s:%s", identity["sensor_id"],
             config.readings_per_second, config.database_path, config.run_time_seconds, config.monitor_host,
             config.monitor_port)
    interval = 1.0 / config.readings_per_second
    deadline = time.monotonic() + config.run_time_seconds
    next_tick = time.monotonic()
    try:
        while time.monotonic() < deadline:
            writer.write()
            with state.lock:
                state.readings_written += 1
            next_tick += interval
            time.sleep(max(0.0, min(next_tick, deadline) - time.monotonic()))
    finally:
        writer.close()
    log.info("simulation complete after %ss (%d readings)", config.run_time_seconds, state.readings_written)


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s - %(name)s - %(levelname)s - %(message)s")
    signal.signal(signal.SIGTERM, _stop)
    try:
        run()
    except (SensorConfigError, IdentityError, OSError) as exc:
        log.error("fatal: %s", exc)
    except SystemExit:
        pass
    except Exception:  # noqa: BLE001 - upstream's quirk: whatever kills it, the exit status stays 0
        log.exception("fatal: unexpected error")
    return 0
