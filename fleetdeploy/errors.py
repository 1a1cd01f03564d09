"""Errors that the CLI turns into one line on stderr and an exit code."""


class InputError(Exception):
    """Bad input from the user: reported before anything is launched or changed (exit code 2)."""

    exit_code = 2


class FleetError(Exception):
    """Some clusters or nodes failed while the rest went on (exit code 1)."""

    exit_code = 1


class Terminated(KeyboardInterrupt):
    """SIGTERM, where a command asked for it as an exception (`watch`): unwinds like Ctrl-C, exits 0."""
