from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dagster import ConfigurableResource
from pydantic import Field, field_validator

from pipeline.storage.retention import DEFAULT_WINDOW_DAYS


class RetentionResource(ConfigurableResource):
    """The retention window shared by the retention job (what to drop) and ingestion (what to refuse)."""

    window_days: int = Field(default=DEFAULT_WINDOW_DAYS, ge=1, description="days kept, today included (>= 1)")
    timezone: str = Field(default="UTC", description="IANA zone in which 'today' is reckoned")
    as_of: str | None = Field(default=None, description="fixed 'today' (YYYY-MM-DD), for replays and tests")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {value!r}: use an IANA name such as 'UTC' or 'Europe/Paris'") from exc
        return value

    def today(self) -> dt.date:
        if self.as_of:
            return dt.date.fromisoformat(self.as_of)
        return dt.datetime.now(ZoneInfo(self.timezone)).date()
