"""Fixtures of the CLI tests: the engine tests' synthetic world, its store, its Parquet export
and the Spark session (engine_world.py, shared with tests/engines)."""

from __future__ import annotations

from engine_world import exported, spark, world, world_store  # noqa: F401 - shared fixtures
