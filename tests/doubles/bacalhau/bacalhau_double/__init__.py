"""Test double of the Bacalhau node (ghcr.io/bacalhau-project/bacalhau): see tests/doubles/README.md."""

VERSION = "v1.9.3"
