"""Keeps a third-party library's output off our stdout: file descriptors 1 and 2 go to a file while it runs.

SkyPilot prints to the process's stdout and stderr ("Starting a local server", ...) from Python and from
processes it starts, so redirecting `sys.stdout` is not enough. Our own console writes to a duplicate of the
original stdout (`original_stdout`), which the redirection leaves alone. A file rather than a pipe: a server that
SkyPilot starts inherits the descriptors and may write long after we stopped reading; a full pipe would block it.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\r")
LineSink = Callable[[str], None]


def strip_ansi(text: str) -> str:
    """Text without terminal colour and cursor codes."""
    return _ANSI.sub("", text)


def original_stdout() -> TextIO:
    """A text stream on a duplicate of fd 1, taken now: still the terminal (or pipe) while fd 1 is captured."""
    sys.stdout.flush()
    return os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", buffering=1, closefd=True)


def original_stderr() -> TextIO:
    """Like `original_stdout`, for fd 2."""
    sys.stderr.flush()
    return os.fdopen(os.dup(sys.stderr.fileno()), "w", encoding="utf-8", buffering=1, closefd=True)


class _Tail(threading.Thread):
    """Reads new complete lines from a file as it grows and hands each to the sink."""

    def __init__(self, path: str, sink: LineSink) -> None:
        super().__init__(daemon=True)
        self._path, self._sink = path, sink
        self._stop_event = threading.Event()
        self._pending = ""

    def run(self) -> None:
        with open(self._path, encoding="utf-8", errors="replace") as handle:
            while True:
                stopping = self._stop_event.wait(0.2)
                self._pending += handle.read()
                *lines, self._pending = self._pending.split("\n")
                for line in lines:
                    self._emit(line)
                if stopping:
                    self._emit(self._pending)
                    return

    def _emit(self, line: str) -> None:
        text = strip_ansi(line).strip()
        if text:
            self._sink(text)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


@contextmanager
def captured_fds(sink: LineSink) -> Iterator[None]:
    """Within the block, whatever is written to fd 1 or fd 2 goes to `sink`, one stripped line at a time."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    fd, path = tempfile.mkstemp(prefix="fleetdeploy-capture-")
    tail = _Tail(path, sink)
    tail.start()
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for copy in saved:
            os.close(copy)
        os.close(fd)
        tail.stop()
        os.unlink(path)
