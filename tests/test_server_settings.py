"""What docvec sets a server's memory to, and how `docvec doctor` says to change it: pure rules, no server."""

from __future__ import annotations

from pipeline.ops.doctor import MiB, SettingCheck
from pipeline.storage.embedded_server import server_settings, shared_buffers


def test_the_embedded_server_gets_a_quarter_of_the_memory_for_shared_buffers() -> None:
    assert shared_buffers(24 * 1024 * MiB) == "6144MB"
    assert shared_buffers(2 * 1024 * MiB) == "512MB"
    assert shared_buffers(256 * MiB) == "128MB"  # the floor: PostgreSQL's own default
    settings = server_settings()
    assert settings["shared_buffers"].endswith("MB") and int(settings["shared_buffers"][:-2]) >= 128
    assert settings["wal_level"] == "minimal"  # the rest of the embedded tuning is kept


def test_the_doctor_says_how_to_apply_a_recommendation_and_when_it_takes_effect() -> None:
    low_buffers = SettingCheck("shared_buffers", 256 * MiB, 2048 * MiB, "the vector indexes plus margin")
    assert not low_buffers.ok
    assert low_buffers.fix == ("ALTER SYSTEM SET shared_buffers = '2048MB', then restart the server "
                               "(the embedded one: docvec down && docvec up)")
    low_work = SettingCheck("work_mem", 4 * MiB, 16 * MiB, "sorting in memory")
    assert low_work.fix == "ALTER SYSTEM SET work_mem = '16MB'; SELECT pg_reload_conf()"
