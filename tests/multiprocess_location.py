"""A code location running docvec with Dagster's multiprocess executor (every step in its own process),
for the test of parallel runs over overlapping day ranges."""

from dagster import multiprocess_executor

from pipeline.definitions import build_definitions

defs = build_definitions(executor=multiprocess_executor)
