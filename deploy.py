#!/usr/bin/env python3
"""Fleet deployer entry point: `python deploy.py --help`."""

import sys

try:
    import signal
except KeyboardInterrupt:  # Ctrl-C before our handler exists: the same ending as later
    print("interrupted", file=sys.stderr)
    sys.exit(130)


def _run() -> int:
    # Ctrl-C from the very first moment: a KeyboardInterrupt raised while Python holds an import lock is
    # printed as "Exception ignored" and swallowed, and the command would run on. So every SIGINT is also
    # remembered here: the command stops at its next checkpoint, and never ends as a success.
    received: list[int] = []

    def on_sigint(signum: int, _frame: object) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    try:
        from fleetdeploy.cli import main

        code = main(interrupted=lambda: bool(received))
    except BaseException:
        # After a Ctrl-C, whatever surfaced is its doing (Python 3.11 wraps an exception raised inside a class
        # body's __set_name__ in a RuntimeError, for one): the ending is the same.
        if not received:
            raise
        code = 130
        print("interrupted", file=sys.stderr)
    if received and code != 130:
        print("interrupted", file=sys.stderr)
        code = 130
    return code


if __name__ == "__main__":
    try:
        sys.exit(_run())
    except KeyboardInterrupt:  # between Python's own handler and ours
        print("interrupted", file=sys.stderr)
        sys.exit(130)
