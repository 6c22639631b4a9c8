"""The report's customer-care section."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from test_care_store import care_store  # noqa: F401 (fixture)

from feedwise.report.care import care_tables, render_care_html

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def test_care_section_tables_and_suppression(care_store):  # noqa: F811
    t = care_tables(care_store, T0, T0 + timedelta(days=1), k=1)
    assert t["all"].loc["all", "messages"] == 4
    assert set(t["channel"].index) == {"comment", "dm"}
    html = render_care_html(t, 1)
    assert "Customer care" in html and "25.0%" in html  # auto-answered share
    small = care_tables(care_store, T0, T0 + timedelta(days=1), k=3)
    assert small["all"].loc["all", "messages"] == 4  # 4 customers >= 3
    assert list(small["channel"].index) == ["dm"]  # comment: 1 customer
    none = care_tables(care_store, T0, T0 + timedelta(days=1), k=10)
    assert none["all"].empty and "no customer-care messages" in render_care_html(none, 10)
