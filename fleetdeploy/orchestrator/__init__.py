"""The Bacalhau orchestrator's view of the fleet: its node API client and the wait for nodes to join."""
