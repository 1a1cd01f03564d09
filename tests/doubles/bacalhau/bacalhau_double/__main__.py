import sys

from bacalhau_double.cli import main

sys.exit(main())
