"""Lexical ranking: the terms a chunk or a query is indexed by, and Okapi BM25 weights over them.
Pure Python, shared by ingest (which stores each chunk's terms and weights) and query (which scores
against them), so both sides always tokenize alike."""
