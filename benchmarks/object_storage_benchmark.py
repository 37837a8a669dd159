"""A landing zone of ``--objects`` objects in a local S3-compatible server (moto, over HTTP, signatures
checked): the listing of a day, a first ingest through the engine, an unchanged rerun and a rerun
with one object edited, each with the requests it made. The objects are short distinct notes, so the
embedding does not dominate and what the storage costs shows.

Usage: ``python -m benchmarks.object_storage_benchmark [--objects 10000]``; it works in a scratch
database (``docvec_bench_object_storage``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from benchmarks import smoke
from benchmarks.server import benchmark_main, drop_scratch, scratch_settings
from pipeline.ingest import planning, stages
from pipeline.ingest.chunking import ChunkingConfig
from pipeline.ingest.embedding import load_embedder
from pipeline.ingest.landing_zone import open_landing
from pipeline.ingest.object_storage import StorageOptions
from pipeline.ingest.planning import Recipe
from pipeline.storage import connections
from tests.support.s3_server import REGION, s3_server

DATABASE = "docvec_bench_object_storage"
BUCKET, PREFIX = "bench-landing", "landing"
DAY = dt.date.today()
TOPICS = ("kiln", "glaze", "wheel", "clay", "slip", "bisque", "raku", "stoneware", "porcelain", "earthenware")


def note(n: int) -> bytes:
    return (f"# Studio note {n}\n\nFiring log {n}: the {TOPICS[n % 10]} batch {n // 10} reached cone "
            f"{n % 12} after {n % 9 + 4} hours, with {n % 7 + 1} shelves loaded.\n").encode()


@benchmark_main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=10_000)
    args = smoke.parse_args(parser, {"objects": 30})
    embedder = load_embedder()
    config = ChunkingConfig(max_seq_length=embedder.info.max_seq_length)
    settings = scratch_settings(DATABASE, embedder.info.dim)
    with s3_server() as s3:
        client = s3.client()
        client.create_bucket(Bucket=BUCKET)
        started = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda n: client.put_object(Bucket=BUCKET, Key=f"{PREFIX}/{DAY}/notes/{n:05d}.md",
                                                      Body=note(n)), range(args.objects)))
        upload = time.perf_counter() - started
        landing = open_landing(f"s3://{BUCKET}/{PREFIX}", StorageOptions(
            endpoint_url=s3.endpoint, region=REGION, key=s3.key, secret=s3.secret))
        rows: list[tuple[str, float, Counter[str], str]] = []

        def measure(label: str, step: object) -> None:
            s3.log.reset()
            began = time.perf_counter()
            detail = step() if callable(step) else ""
            rows.append((label, time.perf_counter() - began, Counter(s3.log.counts), str(detail)))

        measure("list the day", lambda: f"{len(landing.files(DAY))} objects")
        with connections.connect(settings) as conn:
            tokenizer = embedder.backend_tokenizer()

            def ingest() -> str:
                plan = planning.plan_day(conn, landing, DAY, Recipe(config, embedder.info))
                if plan.unchanged:
                    return "unchanged: nothing read, chunked, embedded or written"
                batch = plan.read
                chunks = stages.chunk_day(plan, lambda: tokenizer)
                embedded = stages.embed_chunks(chunks, embedder, conn)
                load = stages.load_embeddings(conn, embedded)
                return (f"{len(batch.documents)} read, {len(batch.kept)} kept, {embedded.embedded} embedded, "
                        f"{load.chunks} chunks stored")

            measure("first ingest", ingest)
            measure("unchanged rerun", ingest)
            client.put_object(Bucket=BUCKET, Key=f"{PREFIX}/{DAY}/notes/00042.md", Body=note(42) + b"Edited.\n")
            measure("rerun, 1 object edited", ingest)
    drop_scratch(DATABASE)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; moto S3 server on 127.0.0.1 (HTTP, SigV4 "
          f"checked); {args.objects:,} objects in one day, uploaded in {upload:.1f} s")
    print(f"  {'step':<24} {'seconds':>8} {'LIST':>5} {'GET':>6} {'HEAD':>5}  result")
    for label, seconds, counts, detail in rows:
        print(f"  {label:<24} {seconds:>8.2f} {counts['list']:>5} {counts['object_get']:>6} "
              f"{counts['object_head']:>5}  {detail}")


if __name__ == "__main__":
    main()
