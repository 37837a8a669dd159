"""Chunker properties with the model's real tokenizer."""

from __future__ import annotations

import itertools

import pytest

from pipeline.errors import ConfigError
from pipeline.ingest.chunking import ChunkingConfig, chunk_id, chunk_texts
from pipeline.ingest.embedding import Embedder

ADVERSARIAL = {
    "prose": ("Databases store rows. " * 40 + "\n\n") * 6,
    "long_words": " ".join(["Pneumonoultramicroscopicsilicovolcanoconiosis"] * 300),
    "no_spaces": "abcdefghij" * 2000,
    "cjk": "東京は日本の首都であり、世界最大の都市圏の一つです。" * 120,
    "emoji": "🚀🔥✨ launch " * 400,
    "code": "def f(x):\n    return [i ** 2 for i in range(x) if i % 3 == 0]\n\n" * 80,
    "one_giant_line": "token," * 5000,
    "mixed": "Ünïcödé — naïve café; résumé! 😀 " * 300,
    "one_unknown_megaword": "x" * 1_000_000,  # one [UNK] token for the whole text
}


def test_the_fast_tiers_tokenizer_and_length_are_the_models_own(tokenizer, chunking_config, embedder: Embedder) -> None:
    """The ``tokenizer`` and ``chunking_config`` fixtures read the model's files without loading it: they
    must be exactly what the loaded model gives, or the chunking tests below would test something else."""
    assert tokenizer.to_str() == embedder.backend_tokenizer().to_str()
    assert chunking_config.max_seq_length == embedder.info.max_seq_length


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_no_chunk_exceeds_the_models_limit(name: str, embedder: Embedder, tokenizer, chunking_config) -> None:
    text = ADVERSARIAL[name]
    [chunks] = chunk_texts([text], tokenizer, chunking_config)
    assert chunks, "a non-empty document yields chunks"
    # Exactly as the model sees it: with [CLS]/[SEP], through the model's own tokenizer object.
    lengths = [len(embedder.model.tokenizer(c.text)["input_ids"]) for c in chunks]
    assert max(lengths) <= embedder.info.max_seq_length, (name, max(lengths))
    assert max(len(c.text) for c in chunks) <= chunking_config.max_chars, "no token carries unbounded text"
    assert [c.seq for c in chunks] == list(range(len(chunks)))


@pytest.mark.parametrize("name", ["prose", "code", "cjk", "long_words", "one_unknown_megaword"])
def test_chunks_cover_the_whole_text(name: str, tokenizer, chunking_config) -> None:
    text = ADVERSARIAL[name]
    [chunks] = chunk_texts([text], tokenizer, chunking_config)
    covered = [False] * len(text)
    for chunk in chunks:
        for i in range(chunk.char_start, chunk.char_end):
            covered[i] = True
    uncovered = "".join(ch for ch, ok in zip(text, covered, strict=True) if not ok)
    assert uncovered.strip() == "", f"text outside every chunk: {uncovered[:80]!r}"


def test_overlap_shares_text_between_neighbours(tokenizer, chunking_config) -> None:
    config = ChunkingConfig(max_seq_length=chunking_config.max_seq_length, overlap_tokens=24)
    [chunks] = chunk_texts([ADVERSARIAL["prose"]], tokenizer, config)
    assert len(chunks) > 2
    for left, right in itertools.pairwise(chunks):
        assert right.char_start < left.char_end, "consecutive chunks overlap"
    [plain] = chunk_texts([ADVERSARIAL["prose"]], tokenizer,
                          ChunkingConfig(max_seq_length=chunking_config.max_seq_length, overlap_tokens=0))
    for left, right in itertools.pairwise(plain):
        assert right.char_start >= left.char_end


def test_prefers_paragraph_and_sentence_boundaries(tokenizer, chunking_config) -> None:
    paragraphs = [f"Paragraph {i} talks about topic {i}. " * 12 for i in range(8)]
    [chunks] = chunk_texts(["\n\n".join(paragraphs)], tokenizer, chunking_config)
    for chunk in chunks[:-1]:
        assert chunk.text.rstrip().endswith("."), chunk.text[-40:]


def test_max_tokens_caps_below_the_model(tokenizer, chunking_config) -> None:
    config = ChunkingConfig(max_seq_length=chunking_config.max_seq_length, max_tokens=64, overlap_tokens=8)
    [chunks] = chunk_texts([ADVERSARIAL["prose"]], tokenizer, config)
    assert max(c.token_count for c in chunks) <= 64
    assert len(chunks) > 10


def test_chunking_is_deterministic(tokenizer, chunking_config) -> None:
    first = chunk_texts([ADVERSARIAL["mixed"]], tokenizer, chunking_config)
    second = chunk_texts([ADVERSARIAL["mixed"]], tokenizer, chunking_config)
    assert [c.content_sha256 for c in first[0]] == [c.content_sha256 for c in second[0]]
    ids = {chunk_id("a.md", c.seq, c.content_sha256) for c in first[0]}
    assert len(ids) == len(first[0])
    assert chunk_id("a.md", 0, "x") == chunk_id("a.md", 0, "x") != chunk_id("b.md", 0, "x")


@pytest.mark.parametrize("kwargs", [{"overlap_tokens": -1}, {"overlap_tokens": 200}, {"max_tokens": 4}])
def test_bad_chunking_config_is_refused(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        ChunkingConfig(max_seq_length=256, **kwargs)
