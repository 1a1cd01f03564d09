"""Reaching the nodes: the Ansible inventory, Ansible runs through ansible-runner, their logs, and ssh."""
