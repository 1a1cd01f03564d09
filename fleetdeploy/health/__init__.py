"""Node health, judged in one place: the node's own checks and the orchestrator's view give one verdict per node."""
