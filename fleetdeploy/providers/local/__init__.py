"""The local provider: fleet nodes are systemd containers on this machine's Docker engine."""
