"""The readings database: SQLite table `sensor_readings` in WAL mode, like the simulator's."""

from __future__ import annotations

import os
import random
import sqlite3
from datetime import UTC, datetime
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS sensor_readings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    timestamp TEXT NOT NULL,
    sensor_id TEXT NOT NULL,
    temperature REAL,
    humidity REAL,
    pressure REAL,
    vibration REAL,
    voltage REAL,
    status_code INTEGER,
    anomaly_flag BOOLEAN DEFAULT 0,
    anomaly_type TEXT,
    firmware_version TEXT,
    model TEXT,
    manufacturer TEXT,
    location TEXT,
    latitude REAL,
    longitude REAL,
    synced BOOLEAN DEFAULT 0
)
"""
_INSERT = """
INSERT INTO sensor_readings (timestamp, sensor_id, temperature, humidity, pressure, vibration, voltage,
    status_code, anomaly_flag, anomaly_type, firmware_version, model, manufacturer, location, latitude, longitude)
VALUES (?, ?, ?, ?, ?, ?, ?, 0, 0, NULL, ?, ?, ?, ?, ?, ?)
"""


def reset_database(path: str, preserve: bool) -> None:
    """Upstream deletes the database (and its WAL files) at every start unless PRESERVE_EXISTING_DB=true."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if preserve:
        return
    for suffix in ("", "-wal", "-shm"):
        try:
            os.remove(path + suffix)
        except FileNotFoundError:
            pass


class ReadingWriter:
    """The single writer; readers (the monitor) open their own connections."""

    def __init__(self, path: str, identity: dict[str, Any]) -> None:
        self._conn = sqlite3.connect(path)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(SCHEMA)
        self._conn.commit()
        self._identity = identity
        self._random = random.Random(str(identity["sensor_id"]))

    def write(self) -> None:
        device = self._identity["device_info"]
        location = self._identity["location"]
        coords = location["coordinates"]
        r = self._random
        self._conn.execute(_INSERT, (
            datetime.now(UTC).isoformat(), self._identity["sensor_id"],
            round(r.gauss(22.0, 2.0), 2), round(r.uniform(30, 70), 2), round(r.gauss(1013.0, 5.0), 2),
            round(abs(r.gauss(0.1, 0.05)), 3), round(r.gauss(12.0, 0.2), 2),
            device["firmware_version"], device["model"], device["manufacturer"], location["city"],
            coords["latitude"], coords["longitude"],
        ))
        self._conn.commit()

    def close(self) -> None:
        self._conn.close()


def count_rows(path: str) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM sensor_readings").fetchone()[0])


def latest_rows(path: str, limit: int = 10) -> list[dict[str, Any]]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT * FROM sensor_readings ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
    return [dict(row) for row in rows]
