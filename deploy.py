#!/usr/bin/env python3
"""Fleet deployer entry point: `python deploy.py --help`."""

import sys

if __name__ == "__main__":
    try:
        from fleetdeploy.cli import main
    except KeyboardInterrupt:  # Ctrl-C while importing: same ending as anywhere else
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(main())
