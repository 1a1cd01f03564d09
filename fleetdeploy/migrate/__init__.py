"""Moving fleets from the legacy deployer (`deploy.py import-legacy`)."""
