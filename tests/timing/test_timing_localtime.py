"""feedwise.localtime: zone validation with reasons, the fallback, DST gaps and folds."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from feedwise import localtime as lt
from feedwise.errors import ConfigError, DataError


def test_valid_zone_has_no_reason():
    z, reason = lt.zone("Europe/Berlin")
    assert z.key == "Europe/Berlin" and reason is None


@pytest.mark.parametrize("name, reason", [
    ("Mars/Olympus_Mons", "unknown zone 'Mars/Olympus_Mons'"),
    (None, "missing"), ("", "missing"), ("   ", "missing"), (float("nan"), "missing")])
def test_bad_zones_fall_back_with_a_reason(name, reason):
    z, why = lt.zone(name)
    assert z.key == "UTC" and why == reason


def test_fallback_is_configurable_and_checked():
    z, why = lt.zone("nowhere", fallback="America/New_York")
    assert z.key == "America/New_York" and "unknown zone" in why
    with pytest.raises(ConfigError, match="fallback"):
        lt.zone("nowhere", fallback="also/nowhere")


def test_offsets_and_case_are_understood():
    assert lt.zone("UTC+5")[0].key == "Etc/GMT-5"  # POSIX sign of the Etc names
    assert lt.zone("GMT-03:00")[0].key == "Etc/GMT+3"
    assert lt.zone("europe/london")[0].key == "Europe/London"
    z, why = lt.zone("+05:30")
    assert z.key == "UTC" and "Asia/Kolkata" in why  # half hours need a region name


def test_validate_zone_raises_with_the_fix():
    assert lt.validate_zone("Asia/Tokyo").key == "Asia/Tokyo"
    with pytest.raises(DataError, match="'Atlantis/Capital'.*IANA zone name"):
        lt.validate_zone("Atlantis/Capital")
    with pytest.raises(DataError, match="missing"):
        lt.validate_zone(None)


def test_local_hours_per_row_zones_and_epoch_seconds():
    ts = np.array([0, 13 * 3600])  # 1970-01-01 00:00 and 13:00 UTC
    assert list(lt.local_hours(ts, ["America/New_York", "Asia/Tokyo"])) == [19, 22]
    assert list(lt.local_hours([datetime(2026, 1, 1, 12)], "Asia/Kolkata")) == [17]
    # an unknown zone falls back to UTC rather than failing the batch
    assert list(lt.local_hours(ts, ["bogus", "UTC"])) == [0, 13]
    with pytest.raises(DataError, match="one per timestamp"):
        lt.local_hours(ts, ["UTC"])


def test_local_hours_follow_dst():
    summer = datetime(2026, 7, 1, 12, tzinfo=UTC)
    winter = datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert list(lt.local_hours([summer, winter], "Europe/London")) == [13, 12]
    assert lt.local_time(summer, "Europe/London").hour == 13


def test_dst_gap_shifts_forward_with_a_reason_or_raises():
    at, why = lt.to_utc(datetime(2026, 3, 29, 1, 30), "Europe/London")
    assert at == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # shown as 02:30 BST
    assert "DST gap" in why and "02:30" in why
    with pytest.raises(DataError, match="does not exist"):
        lt.to_utc(datetime(2026, 3, 29, 1, 30), "Europe/London", gap="raise")


def test_dst_fold_takes_the_earlier_instant_or_raises():
    early, why = lt.to_utc(datetime(2026, 10, 25, 1, 30), "Europe/London")
    late, _ = lt.to_utc(datetime(2026, 10, 25, 1, 30), "Europe/London", fold="later")
    assert early == datetime(2026, 10, 25, 0, 30, tzinfo=UTC) and "DST fold" in why
    assert late == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    with pytest.raises(DataError, match="happens twice"):
        lt.to_utc(datetime(2026, 10, 25, 1, 30), "Europe/London", fold="raise")


def test_ordinary_wall_time_and_missing_zone():
    at, why = lt.to_utc(datetime(2026, 6, 1, 9, 0), "America/New_York")
    assert at == datetime(2026, 6, 1, 13, 0, tzinfo=UTC) and why is None
    at, why = lt.to_utc(datetime(2026, 6, 1, 9, 0), None)
    assert at == datetime(2026, 6, 1, 9, 0, tzinfo=UTC) and why == "missing"


def test_in_window_wraps_midnight():
    night = lt.in_window(np.arange(24), 22, 7)
    assert night.sum() == 9 and night[23] and night[0] and not night[7]
    assert lt.in_window([5], 5, 5).sum() == 0
