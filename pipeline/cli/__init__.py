"""``docvec``: the command line face of the pipeline. It may launch Dagster (``dagster_runs``); the
engine below it never does."""
