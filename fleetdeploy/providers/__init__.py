"""Where nodes come from: the provider protocol (base.py) and one package per provider (local, skypilot)."""
