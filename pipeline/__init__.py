"""docvec engine: chunking, embedding, COPY loading, search and the embedded server.

Nothing in this package imports Dagster except ``cli.py`` and ``definitions.py``.
"""
