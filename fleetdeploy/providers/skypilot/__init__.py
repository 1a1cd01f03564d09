"""The SkyPilot provider: one cluster per region on AWS spot instances, through the SkyPilot SDK."""
