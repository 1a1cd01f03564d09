"""What the commands do: each computes a result from the fleet, its provider, Ansible runs and the orchestrator."""
