"""The contextual header recipe as a parameter (benchmarks/header_recipes.py measures the others), the
revision suffix that names the one stores embed, and the git evaluation corpus and its questions."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from pipeline import records
from pipeline.ingest import context
from tests.support import corpora

EVAL = Path(__file__).parent.parent / "benchmarks" / "eval"
# Every recipe stores have embedded, by the revision suffix that names it: a new default recipe needs a
# new suffix (so existing stores move to it through the shadow build), and a new line here.
RECIPE_OF_SUFFIX = {"+ctx1": context.HeaderRecipe(sections="path", tokens=32)}


def test_each_recipe_keeps_its_part_of_the_section_path() -> None:
    title, section = "git-push(1)", "git-push(1) > OPTIONS > --force-with-lease"
    assert context.header(title, section) == "git-push(1) > OPTIONS > --force-with-lease"
    assert context.header(title, section, context.HeaderRecipe(sections="last")) == "git-push(1) > --force-with-lease"
    assert context.header(title, section, context.HeaderRecipe(sections="none")) == "git-push(1)"
    assert context.header(None, "Usage > Flags", context.HeaderRecipe(sections="last")) == "Flags"
    assert context.header(title, None, context.HeaderRecipe(sections="last")) == "git-push(1)"


def test_the_default_recipe_is_the_one_the_revision_suffix_names() -> None:
    """Changing ``context.RECIPE`` without a new ``CONTEXT_REVISION_SUFFIX`` would mix two recipes' vectors
    under one revision: this fails until both move together."""
    assert RECIPE_OF_SUFFIX.get(records.CONTEXT_REVISION_SUFFIX) == context.RECIPE, (
        "the header recipe changed: bump records.CONTEXT_REVISION_SUFFIX and add it to RECIPE_OF_SUFFIX")
    assert context.RECIPE.tokens == context.HEADER_TOKENS


def test_the_git_corpus_is_content_pages_and_every_answer_is_in_it() -> None:
    try:
        pages = corpora.git_eval_pages()
    except corpora.CorpusUnavailable as missing:
        pytest.skip(str(missing))
    root = corpora.git_docs()
    ids = {str(page.relative_to(root)) for page in pages}
    assert "git-push.html" in ids and "howto/revert-a-faulty-merge.html" in ids and "user-manual.html" in ids
    assert not ids & {"index.html", "everyday.html", "git-stage.html", "git-remote-helpers.html", "howto-index.html"}, (
        "links, moved-page notes and synonyms are not content")
    questions = [json.loads(line) for line in (EVAL / "git-docs.jsonl").read_text().splitlines()]
    assert len(questions) >= 60
    tags = Counter(tag for q in questions for tag in q["tags"])
    assert tags["natural"] >= 0.4 * len(questions) and tags["identifier"] >= 0.3 * len(questions) and tags["keyword"]
    assert {doc for q in questions for doc in q["expected_doc_ids"]} <= ids
