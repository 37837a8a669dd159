"""Run by tests in a separate process: materialize the ingest DAG over a range of days on a persistent
Dagster instance (``$DAGSTER_HOME``), then report what the run did and which heavy modules it imported.

usage: python -m tests.materialize_script DATABASE_URL LANDING FIRST LAST AS_OF
"""

from __future__ import annotations

import json
import sys

from dagster import DagsterInstance, materialize

from assets import ALL_ASSETS, with_checks
from resources import DayBatchIOManager, EmbedderResource, PostgresResource, RetentionResource, SourceResource

HEAVY = ("torch", "sentence_transformers", "transformers")


def main(argv: list[str]) -> int:
    url, landing, first, last, as_of = argv
    ingest = with_checks(*(a for a in ALL_ASSETS if a.group_names_by_key and "ingest" in a.group_names_by_key.values()))
    with DagsterInstance.get() as instance:
        result = materialize(
            ingest, instance=instance,
            tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last},
            resources={"postgres": PostgresResource(database_url=url), "embedder": EmbedderResource(),
                       "source": SourceResource(landing_dir=landing),
                       "retention_window": RetentionResource(as_of=as_of), "batch_io_manager": DayBatchIOManager()})
        run = instance.get_run_stats(result.run_id)
    checks = {c.check_name: (c.passed, dict(c.metadata)) for c in result.get_asset_check_evaluations()}
    passed, retrieval = checks["retrieval_quality"]
    print(json.dumps({
        "success": result.success,
        "seconds": run.end_time - run.start_time if run.end_time and run.start_time else None,
        "heavy_modules": sorted(m for m in HEAVY if m in sys.modules),
        "days_unchanged": result.asset_materializations_for_node("vector_store")[0].metadata["days_unchanged"].value,
        "retrieval_passed": passed,
        "retrieval_remeasured": retrieval["remeasured"].value if "remeasured" in retrieval else None,
    }))
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
