"""Lists of links rank below prose. An index, a table of contents or a module list names every term
of a manual, so it matches almost any query, and answers none. The generic signal is link density
(the share of a chunk's characters that are link text, as the readers record it): prose with
cross-references stays under ~0.2 (99% of the Python documentation's prose chunks), index and contents
pages sit at 0.7-0.9. A chunk's ``prior`` multiplies its scores in both search branches."""

from __future__ import annotations

PROSE_LINK_SHARE = 0.3  # up to here: prose with links, prior 1
LIST_LINK_SHARE = 0.7  # from here: a list of links, prior LIST_PRIOR
LIST_PRIOR = 0.5  # chosen on benchmarks/eval/python-docs.jsonl (RESULTS.md)


def prior(share: float) -> float:
    """1 for prose, ``LIST_PRIOR`` for a list of links, linear between."""
    if share <= PROSE_LINK_SHARE:
        return 1.0
    listed = min(1.0, (share - PROSE_LINK_SHARE) / (LIST_LINK_SHARE - PROSE_LINK_SHARE))
    return round(1.0 - (1.0 - LIST_PRIOR) * listed, 3)
