"""Fixtures of the suite against the real SkyPilot 0.14.1 SDK and API server; the machinery is in sky_world.py."""

from sky_world import world  # noqa: F401 - registers the module-scoped fixture
