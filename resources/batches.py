from __future__ import annotations

import os
import pickle
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dagster import ConfigurableIOManager, InputContext, OutputContext
from pydantic import Field

from pipeline.settings import load_settings


class DayBatchIOManager(ConfigurableIOManager):
    """Stores an asset's output one file per daily partition, so a single run can cover a range of days
    (``BackfillPolicy.single_run``) and a later run can read any subset of them. Outputs and inputs are
    ``{"YYYY-MM-DD": batch}`` mappings."""

    base_dir: str | None = Field(default=None, description="empty = $DOCVEC_HOME/dagster/batches")

    def _root(self) -> Path:
        return Path(self.base_dir) if self.base_dir else load_settings().dagster_artifacts_dir / "batches"

    def _path(self, asset_path: Sequence[str], partition: str) -> Path:
        return self._root().joinpath(*asset_path, f"{partition}.pkl")

    def handle_output(self, context: OutputContext, obj: Mapping[str, Any]) -> None:
        keys = context.asset_partition_keys if context.has_asset_partitions else ["all"]
        missing = [key for key in keys if key not in obj]
        if missing:
            raise ValueError(f"{context.asset_key.to_user_string()} returned no batch for partitions {missing}")
        for key in keys:
            path = self._path(context.asset_key.path, key)
            path.parent.mkdir(parents=True, exist_ok=True)
            # Unique per writer: two runs of overlapping day ranges may write the same day at once.
            tmp = path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
            with tmp.open("wb") as handle:
                pickle.dump(obj[key], handle, protocol=pickle.HIGHEST_PROTOCOL)
            tmp.replace(path)  # a crashed write never leaves a half file behind

    def load_input(self, context: InputContext) -> dict[str, Any]:
        keys = context.asset_partition_keys if context.has_asset_partitions else ["all"]
        batches = {}
        for key in keys:
            path = self._path(context.asset_key.path, key)
            if not path.exists():
                raise FileNotFoundError(
                    f"no stored batch for {context.asset_key.to_user_string()} partition {key} ({path}): "
                    "materialize the upstream asset for that day first"
                )
            with path.open("rb") as handle:
                batches[key] = pickle.load(handle)
        return batches
