import sys

from sensor_double.main import main

sys.exit(main())
