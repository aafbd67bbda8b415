"""Stages for the pipeline runner's tests (see ../README.md)."""
