"""Behaviour insight over the store: KPIs, sessions, cohorts, funnels, profiles, segments,
content and campaign results.

Everything reads a :class:`Scope` (a time window of consenting users' events with the
small-group threshold ``k``) and runs as DuckDB SQL; tables come back already suppressed
(see :mod:`feedwise.analytics.suppression`).
"""

from feedwise.analytics.kpis import kpi_change, kpi_series, kpi_summary
from feedwise.analytics.profiles import UserProfiler, read_profiles
from feedwise.analytics.scope import Scope
from feedwise.analytics.segments import Segmenter, segment_table
from feedwise.analytics.sessions import SessionConfig
from feedwise.analytics.suppression import suppress

__all__ = ["Scope", "SessionConfig", "Segmenter", "UserProfiler", "kpi_change", "kpi_series",
           "kpi_summary", "read_profiles", "segment_table", "suppress"]
