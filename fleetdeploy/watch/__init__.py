"""`deploy.py watch`: the unattended supervisor (observe → decide → act → record), its state, alerts, metrics,
event log and report page."""
