"""Self-contained HTML reports (Plotly bundled inline) and the dashboard's charts."""

from feedwise.report.builder import InsightReport, ReportConfig, build_report
from feedwise.report.html import render_html, write_html

__all__ = ["InsightReport", "ReportConfig", "build_report", "render_html", "write_html"]
