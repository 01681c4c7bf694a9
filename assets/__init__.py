"""Dagster assets and asset checks, one package per domain; wired up in `pipelines`."""
