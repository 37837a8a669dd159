"""Embedding throughput, backends and memory, measured side by side in one run on the same chunks:

1. raw ``SentenceTransformer.encode`` chunks/s vs a whole Dagster materialization of the same corpus
   (read, chunk, embed, binary COPY, day swap) in chunks/s: the pipeline's overhead (target <= 15%). The
   raw encode gets what the pipeline's model gets: the chunks cut by the pipeline's recipe (room left
   for the contextual header), each with its header;
2. each backend (torch fp32, onnx, onnx-int8) on the same chunks: chunks/s, speed-up over torch, cosine
   to torch's vectors, top-10 overlap with torch on the sample's labelled queries (targets >= 2x, >= 0.99);
3. peak RSS of the embedding step on a 100k-chunk day, in a child process of its own.

Usage: ``python -m benchmarks.embedding_benchmark [--days 2] [--docs-per-day 60] [--device auto]
[--batch-size 64] [--backends torch,onnx,onnx-int8] [--memory-chunks 100000]``. The corpus is the
bundled sample's notes joined into long documents, so chunks are ~230 tokens, near the model's 256.
On a CUDA machine the same command measures the GPU (fp16); ONNX backends are CPU-only and are skipped there.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import smoke
from benchmarks.server import benchmark_main, drop_scratch, scratch_settings
from pipeline import sample_corpus
from pipeline.ingest import context, stages
from pipeline.ingest.chunking import ChunkingConfig, chunk_texts
from pipeline.ingest.embedding import Embedder, load_embedder
from pipeline.ingest.landing_zone import list_days
from pipeline.ingest.planning import Recipe
from pipeline.storage import connections

DATABASE = "docvec_bench_embedding"
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def write_long_corpus(landing: Path, days: int, docs_per_day: int, end: dt.date) -> None:
    """Long documents made of the sample's own notes, several per file."""
    with tempfile.TemporaryDirectory() as tmp:
        sample_corpus.write_sample_corpus(Path(tmp), end=end, notes_per_topic_per_day=8)
        notes = [p.read_text().split("---", 2)[-1].strip() for p in sorted(Path(tmp).rglob("*.md"))]
    rng = np.random.default_rng(7)
    for offset in range(days):
        folder = landing / (end - dt.timedelta(days=offset)).isoformat()
        folder.mkdir(parents=True)
        for n in range(docs_per_day):
            picked = rng.choice(len(notes), size=12, replace=False)
            body = "\n\n".join(notes[i] for i in picked)
            (folder / f"long-{n:04d}.md").write_text(f"---\ntopic: benchmark\n---\n# Long document {n}\n\n{body}\n")


def corpus_chunks(landing: Path, embedder: Embedder) -> list[str]:
    """What the pipeline gives the model for the corpus: its chunks, cut with the pipeline's recipe for
    this embedder (room left for the contextual header), each with its header."""
    recipe = Recipe.of(embedder.info, contextual=embedder.contextual)
    tokenizer = embedder.backend_tokenizer()
    texts = []
    for day in list_days(landing):
        chunks = stages.chunk_documents(stages.read_documents(landing, day), tokenizer, recipe.chunking,
                                        contextual=recipe.contextual).chunks
        texts += [context.embedded_text(chunk.context, chunk.text) for chunk in chunks]
    return texts


def dagster_materialization(landing: Path, settings, device: str, batch_size: int | None, tmp: Path) -> tuple[float, int]:
    from dagster import DagsterInstance, Definitions

    from assets import (
        chunk_embeddings,
        document_chunks,
        raw_documents,
        vector_store,
    )
    from resources import (
        DayBatchIOManager,
        EmbedderResource,
        PostgresResource,
        RetentionResource,
        SourceResource,
    )
    from schedules import ingest_job

    days = list_days(landing)
    defs = Definitions(
        assets=[raw_documents, document_chunks, chunk_embeddings, vector_store], jobs=[ingest_job],
        resources={
            "postgres": PostgresResource(database_url=settings.database_url),
            "embedder": EmbedderResource(device=device, batch_size=batch_size),
            "source": SourceResource(landing_dir=str(landing)),
            "retention_window": RetentionResource(as_of=days[-1].isoformat()),
            "batch_io_manager": DayBatchIOManager(base_dir=str(tmp / "batches")),
        },
    )
    job = defs.resolve_job_def(ingest_job.name)
    started = time.perf_counter()
    with DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(instance=instance, run_config=QUIET, tags={
            "dagster/asset_partition_range_start": days[0].isoformat(),
            "dagster/asset_partition_range_end": days[-1].isoformat()})
    seconds = time.perf_counter() - started
    assert result.success
    meta = {e.asset_key.to_user_string(): e.materialization.metadata for e in result.get_asset_materialization_events()}
    return seconds, int(meta["vector_store"]["chunks"].value)


def top10_overlap(reference: np.ndarray, vectors: np.ndarray, query_ref: np.ndarray, query_vec: np.ndarray) -> float:
    ref_top = np.argsort(-(query_ref @ reference.T), axis=1)[:, :10]
    top = np.argsort(-(query_vec @ vectors.T), axis=1)[:, :10]
    return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ref_top, top, strict=True)]))


def document_recall(scores: np.ndarray, doc_ids: np.ndarray, labelled: list[dict]) -> tuple[float, float]:
    """Documents ranked by their best chunk: recall@5 and MRR of the expected document."""
    recalls, reciprocal = [], []
    for row, query in zip(scores, labelled, strict=True):
        ranked = list(dict.fromkeys(doc_ids[np.argsort(-row)]))
        expected = set(query["expected_doc_ids"])
        rank = next((i + 1 for i, doc in enumerate(ranked) if doc in expected), None)
        recalls.append(rank is not None and rank <= 5)
        reciprocal.append(1 / rank if rank else 0.0)
    return float(np.mean(recalls)), float(np.mean(reciprocal))


def peak_rss_mib() -> float:
    """This process's peak resident set (VmHWM). Not getrusage's ru_maxrss: Linux carries that over
    exec from the forking parent, which here holds every backend's model."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def memory_child(chunks: int, batch_size: int | None) -> None:
    """Embed one day of ``chunks`` short chunks through ``stages.embed_chunks`` and print RSS figures."""
    from pipeline.records import ChunkRecord, DayChunks

    embedder = load_embedder(batch_size=batch_size)
    after_load = peak_rss_mib()
    with tempfile.TemporaryDirectory() as tmp:
        sample_corpus.write_sample_corpus(Path(tmp))
        sentences = [s.strip() for p in sorted(Path(tmp).rglob("*.md")) for s in p.read_text().split(".") if len(s) > 40]
    records = [ChunkRecord(chunk_id=f"m{i}", doc_id=f"doc-{i // 50}", seq=i % 50,
                           text=f"{sentences[i % len(sentences)]} (variant {i})", token_count=0,
                           content_sha256=f"{i:064x}", metadata={}) for i in range(chunks)]
    day = DayChunks(day=dt.date(2026, 1, 1), documents=[], chunks=records, chunk_counts={}, dead_letters=[],
                    seconds=0.0, fingerprint="memory")
    before = peak_rss_mib()
    settings = scratch_settings(DATABASE + "_memory", embedder.info.dim)
    started = time.perf_counter()
    with connections.connect(settings) as conn:
        result = stages.embed_chunks(day, embedder, conn)
    seconds = time.perf_counter() - started
    drop_scratch(DATABASE + "_memory")
    print(json.dumps({"chunks": chunks, "embedded": result.embedded, "seconds": seconds,
                      "rss_after_model_mib": after_load, "rss_with_chunks_mib": before, "peak_rss_mib": peak_rss_mib(),
                      "text_bytes": sum(len(r.text) for r in records)}))


@benchmark_main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--docs-per-day", type=int, default=60)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, help="default: the embedder's per-device default")
    parser.add_argument("--backends", default="torch,onnx,onnx-int8")
    parser.add_argument("--backend-chunks", type=int, default=600, help="chunks per backend comparison")
    parser.add_argument("--sample-notes", type=int, default=5,
                        help="notes per topic per day of the sample corpus the labelled queries run on")
    parser.add_argument("--memory-chunks", type=int, default=100_000, help="0 skips the memory run")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = smoke.parse_args(parser, {"days": 1, "docs_per_day": 2, "backends": "torch", "backend_chunks": 16,
                                     "sample_notes": 1, "memory_chunks": 100})
    if args.memory_child:
        memory_child(args.memory_child, args.batch_size)
        return

    embedder = load_embedder(device=args.device, batch_size=args.batch_size)
    print(f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores; "
          f"model {embedder.info.name} on {embedder.device}, batches of "
          f"{embedder.batch_size or f'up to {embedder.tokens_per_batch} padded tokens'}")
    if embedder.device.startswith("cuda"):
        import torch

        print(f"GPU: {torch.cuda.get_device_name()} (fp16)")
    settings = scratch_settings(DATABASE, embedder.info.dim)
    with tempfile.TemporaryDirectory() as tmp:
        landing = Path(tmp) / "landing"
        write_long_corpus(landing, args.days, args.docs_per_day, dt.date.today())
        texts = corpus_chunks(landing, embedder)
        tokens = [len(e.ids) for e in embedder.backend_tokenizer().encode_batch(texts)]
        print(f"corpus: {args.days} days, {args.days * args.docs_per_day} documents, {len(texts)} chunks, "
              f"{np.mean(tokens):.0f} tokens per chunk on average (max {max(tokens)})")

        # 1. Raw encode vs the whole pipeline, same chunks, same model object.
        raw_batch = args.batch_size or (256 if embedder.device.startswith("cuda") else 8)  # its best fixed size here
        embedder.model.encode(texts[:raw_batch], batch_size=raw_batch)  # warm-up
        started = time.perf_counter()
        embedder.model.encode(texts, batch_size=raw_batch, convert_to_numpy=True, show_progress_bar=False)
        raw_seconds = time.perf_counter() - started
        raw_rate = len(texts) / raw_seconds
        pipeline_seconds, loaded = dagster_materialization(landing, settings, args.device, args.batch_size, Path(tmp))
        assert loaded == len(texts), (loaded, len(texts))
        pipeline_rate = loaded / pipeline_seconds
        print("\n1. pipeline overhead")
        print(f"   raw model.encode            {raw_rate:9.1f} chunks/s  ({raw_seconds:.1f} s, batch size {raw_batch})")
        print(f"   Dagster materialization     {pipeline_rate:9.1f} chunks/s  ({pipeline_seconds:.1f} s: read, chunk, "
              "embed, COPY, swap, Dagster run)")
        print(f"   ratio {pipeline_rate / raw_rate:.3f} (target >= 0.85)")

    # 2. Backends: speed and vector agreement on the long chunks; retrieval on the sample corpus.
    sample = texts[:args.backend_chunks]
    labelled = sample_corpus.labelled_queries()
    queries = [str(q["query"]) for q in labelled]
    with tempfile.TemporaryDirectory() as tmp:
        sample_corpus.write_sample_corpus(Path(tmp), notes_per_topic_per_day=args.sample_notes)
        corpus = [(d.doc_id, piece.text) for day in list_days(Path(tmp))
                  for d in stages.read_documents(Path(tmp), day).documents
                  for piece in chunk_texts([d.text], embedder.backend_tokenizer(),
                                           ChunkingConfig(max_seq_length=embedder.info.max_seq_length))[0]]
    doc_ids = np.array([doc for doc, _ in corpus])
    print(f"\n2. backends: speed and cosine to torch fp32 on {len(sample)} long chunks; top-10 chunk overlap with "
          f"torch and document recall@5 / MRR for the {len(queries)} labelled queries over the sample corpus "
          f"({len(corpus)} chunks)")
    reference = query_reference = reference_rate = None
    for backend in args.backends.split(","):
        if backend != "torch" and embedder.device != "cpu":
            print(f"   {backend:<10} skipped: CPU-only backend on a {embedder.device} machine")
            continue
        model = embedder if backend == "torch" else Embedder(backend=backend, batch_size=args.batch_size)
        model.encode(sample[:8])
        started = time.perf_counter()
        vectors = model.encode(sample)
        rate = len(sample) / (time.perf_counter() - started)
        corpus_vectors, query_vectors = model.encode([text for _, text in corpus]), model.encode(queries)
        if reference is None:
            reference, query_reference, reference_rate = (vectors, corpus_vectors), query_vectors, rate
        cosine = (vectors * reference[0]).sum(axis=1)
        overlap = top10_overlap(reference[1], corpus_vectors, query_reference, query_vectors)
        recall, mrr = document_recall(query_vectors @ corpus_vectors.T, doc_ids, labelled)
        print(f"   {backend:<10} {rate:6.1f} chunks/s {rate / reference_rate:5.2f}x  cosine mean {cosine.mean():.4f} "
              f"min {cosine.min():.4f}  top-10 overlap {overlap:.3f}  recall@5 {recall:.3f} MRR {mrr:.3f}"
              f"  (revision {model.info.revision})")
    drop_scratch(DATABASE)

    # 3. Memory of a 100k-chunk day's embedding step, in a fresh process.
    if args.memory_chunks:
        batch = ["--batch-size", str(args.batch_size)] if args.batch_size else []
        child = subprocess.run([sys.executable, "-m", "benchmarks.embedding_benchmark", "--memory-child",
                                str(args.memory_chunks), *batch], capture_output=True, text=True, check=True)
        figures = json.loads(child.stdout.strip().splitlines()[-1])
        per_chunk_kib = (figures["peak_rss_mib"] - figures["rss_after_model_mib"]) * 1024 / figures["chunks"]
        print(f"\n3. memory: one day of {figures['chunks']:,} chunks through stages.embed_chunks "
              f"({figures['seconds']:.0f} s, {figures['chunks'] / figures['seconds']:.0f} chunks/s on short chunks)")
        print(f"   RSS after loading the model {figures['rss_after_model_mib']:.0f} MiB, with the day's chunks "
              f"{figures['rss_with_chunks_mib']:.0f} MiB, peak {figures['peak_rss_mib']:.0f} MiB "
              f"({per_chunk_kib:.1f} KiB per chunk above the model, "
              f"text {figures['text_bytes'] / figures['chunks']:.0f} B/chunk)")


if __name__ == "__main__":
    main()
