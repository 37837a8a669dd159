"""``--smoke``: a benchmark's own code path on tiny data, in seconds. The test suite runs every benchmark
the README lists this way (tests/test_benchmarks.py), so a change that breaks one fails CI instead of
waiting for the next person who measures. A smoke run's figures measure nothing."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence


def parse_args(parser: argparse.ArgumentParser, smoke: Mapping[str, object],
               argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The benchmark's arguments; with ``--smoke``, ``smoke``'s sizes replace the defaults (options given
    on the command line still win)."""
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes, seconds: checks that the benchmark runs; its figures mean nothing")
    args = parser.parse_args(argv)
    if args.smoke:
        parser.set_defaults(**smoke)
        args = parser.parse_args(argv)
        sizes = ", ".join(f"{key}={value}" for key, value in smoke.items())
        print(f"smoke run{f' ({sizes})' if sizes else ''}: figures mean nothing", flush=True)
    return args
