"""Test double of the sensor simulator (ghcr.io/bacalhau-project/sensor-log-generator): see tests/doubles/README.md."""
