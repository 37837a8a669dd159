"""What the tests (and the benchmarks, which are dev tooling too) build on; nothing here is part of docvec.

- ``fixtures/``: the shared fixtures, as pytest plugins (tests/conftest.py loads them); ``tiers``: the
  markers each test gets from what it needs, and the guard that fails a test needing more than it declares.
- Data: ``sample`` (the sample corpus's dates, day folders), ``vectors`` (clustered vectors, ready-made
  days of them), ``corpora`` (real documents from Debian packages), ``queries`` (query vectors).
- Servers: ``pg_cluster`` (a TCP PostgreSQL of a test's own), ``pgbouncer``, ``tcp_relay`` (a network that
  can be cut), ``s3_server`` (moto), ``celery_cluster`` (Redis and Celery workers), ``browser`` (headless
  Chromium), ``network`` (free ports); ``databases`` (scratch databases, waiting for a backend to exit).
"""
