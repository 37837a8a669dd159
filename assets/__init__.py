"""Thin Dagster assets: each calls the engine in ``pipeline/`` and reports what it did."""
