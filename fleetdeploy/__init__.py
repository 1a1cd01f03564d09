"""Fleet deployer for Bacalhau sensor nodes: SkyPilot provisioning + Ansible configuration."""

__version__ = "0.1.0"
