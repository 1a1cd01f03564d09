"""`deploy.py canary`: one small job per node through the orchestrator, proof that nodes can do work."""
