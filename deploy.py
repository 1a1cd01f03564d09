#!/usr/bin/env python3
"""Fleet deployer entry point: `python deploy.py --help`."""

import sys

from fleetdeploy.cli import main

if __name__ == "__main__":
    sys.exit(main())
