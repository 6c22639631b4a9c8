"""Alerts: bursts of negative sentiment or of volume per tracked keyword (Poisson CUSUM).

For each tracked keyword and metric (``negative``: comments the analyser labels negative
that mention the keyword; ``volume``: all comments mentioning it) the comments are counted
in bins of ``bin_minutes``. A storm is many people, not one person talking a lot: a user
counts at most once per ``dedup_minutes`` per keyword and metric (their further comments in
that time are not counted; ``0`` counts every comment). Without this, one user's session of
five comments on a topic is a "volume burst" — the over-dispersion of comment counts that
made the Poisson model raise false alarms on worlds without bursts.

Each bin has an expected count ``λ0`` (the baseline): an exponentially weighted mean of the
keyword's past bins (half-life ``halflife_hours``), times an hour-of-day factor learned
online from all comments seen so far (people comment more at some hours), and at least
``floor_per_hour``. A Poisson CUSUM tests each bin against a burst rate ``λ1 = max(ratio ·
λ0, λ0 + min_rate_per_hour · bin)``::

    S_t = max(0, S_{t-1} + x_t · log(λ1 / λ0) − (λ1 − λ0))

and raises an alert when ``S_t > threshold`` and the run since ``S`` last was 0 holds at
least ``min_count`` comments. The alert's window is that run (its first bin is the onset
estimate); it carries the baseline (expected count in the window), the observed count and
sample comments. After an alert the keyword's statistic restarts, the baseline is frozen
for ``cooldown_hours`` (a burst does not become the new normal) and no second alert of the
same keyword and metric is raised in that time. Nothing before ``warmup_hours`` of history
alerts (the baseline is still being learned; the warm-up starts at the first comment).

Only the past is used at every bin: run over a live store, the detector raises the same
alerts it would have raised at the time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from feedwise.analytics.listening import default_keywords, mentions
from feedwise.errors import ConfigError
from feedwise.schema import utc

METRICS: tuple[str, ...] = ("negative", "volume")


@dataclass
class Alert:
    """A detected burst.

    Attributes:
        alert_id: Stable id (keyword, metric, window start): the same burst keeps its id
            across runs, so a webhook can skip alerts it has sent.
        keyword, metric: What burst (``negative`` or ``volume``).
        window_start, window_end: The burst's window so far (onset estimate, detection).
        detected_at: When the alert fires (``window_end``).
        baseline: Expected comments in the window; ``observed``: counted.
        score: The CUSUM statistic at detection.
        samples: Up to five comments of the window (``ts``, ``item_id``, ``text``).
    """

    alert_id: str
    keyword: str
    metric: str
    window_start: datetime
    window_end: datetime
    detected_at: datetime
    baseline: float
    observed: int
    score: float
    samples: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("window_start", "window_end", "detected_at"):
            d[k] = d[k].isoformat()
        d["baseline"] = round(float(d["baseline"]), 3)
        d["score"] = round(float(d["score"]), 3)
        return d


class BurstDetector:
    """Poisson-CUSUM burst detector per tracked keyword (see the module doc).

    Args:
        bin_minutes: Width of a counting bin.
        ratio: A burst is at least ``ratio`` times the baseline ...
        min_rate_per_hour: ... and at least this many comments per hour above it.
        threshold: CUSUM threshold (higher: fewer, later alerts).
        min_count: Comments the alert window must hold.
        halflife_hours: Half-life of the baseline's weighted mean.
        floor_per_hour: Smallest baseline rate (keeps rare keywords from alerting on one
            comment).
        warmup_hours: History needed before any alert.
        cooldown_hours: Quiet time per keyword and metric after an alert.
        n_samples: Sample comments per alert.

    The defaults (``dedup_minutes=60``, ``min_rate_per_hour=6``, ``threshold=12``) were chosen
    on the synthetic worlds of tuning seeds 100-104 (``benchmarks/_listening_world.py
    --tune``): the middle of the plateau where worlds without bursts raise no alert while
    bursts are still found within the hour.
        dedup_minutes: A user counts at most once per this many minutes per keyword and
            metric (needs a ``user_id`` column; ``0``: count every comment).
    """

    def __init__(self, bin_minutes: float = 15.0, ratio: float = 4.0,
                 min_rate_per_hour: float = 6.0, threshold: float = 12.0, min_count: int = 4,
                 halflife_hours: float = 72.0, floor_per_hour: float = 0.05,
                 warmup_hours: float = 48.0, cooldown_hours: float = 12.0,
                 n_samples: int = 5, dedup_minutes: float = 60.0) -> None:
        self.bin_minutes = bin_minutes
        self.ratio = ratio
        self.min_rate_per_hour = min_rate_per_hour
        self.threshold = threshold
        self.min_count = min_count
        self.halflife_hours = halflife_hours
        self.floor_per_hour = floor_per_hour
        self.warmup_hours = warmup_hours
        self.cooldown_hours = cooldown_hours
        self.n_samples = n_samples
        self.dedup_minutes = dedup_minutes

    def get_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in (
            "bin_minutes", "ratio", "min_rate_per_hour", "threshold", "min_count",
            "halflife_hours", "floor_per_hour", "warmup_hours", "cooldown_hours", "n_samples",
            "dedup_minutes")}

    def _validate(self) -> None:
        for k in ("bin_minutes", "ratio", "threshold", "halflife_hours", "floor_per_hour"):
            if not float(getattr(self, k)) > 0:
                raise ConfigError(f"BurstDetector: {k} must be > 0, got {getattr(self, k)}")
        if not float(self.dedup_minutes) >= 0:
            raise ConfigError(f"BurstDetector: dedup_minutes must be >= 0, got "
                              f"{self.dedup_minutes}")
        if self.ratio <= 1:
            raise ConfigError(f"BurstDetector: ratio must be > 1, got {self.ratio}")

    def detect(self, comments: pd.DataFrame, keywords: Sequence[str] | None = None, *,
               metrics: Sequence[str] = METRICS, start: datetime | None = None,
               end: datetime | None = None) -> list[Alert]:
        """Alerts over scored comments (:func:`~feedwise.analytics.listening.score_comments`).

        Args:
            comments: Columns ``ts``, ``text``, ``label`` (and ``item_id`` for samples).
            keywords: Tracked keywords (default: the tags of the most-commented posts).
            metrics: ``negative`` and/or ``volume``.
            start, end: The monitored window (default: the comments' span); bins start at
                ``start`` floored to the bin.

        Returns:
            Alerts sorted by detection time.
        """
        self._validate()
        bad = [m for m in metrics if m not in METRICS]
        if bad:
            raise ConfigError(f"unknown metric {bad[0]!r}: use {', '.join(METRICS)}")
        if comments is None or len(comments) == 0:
            return []
        kws = list(keywords) if keywords else default_keywords(comments)
        if not kws:
            return []
        c = comments.reset_index(drop=True)
        ts = pd.to_datetime(c["ts"], utc=True)
        width = pd.Timedelta(minutes=float(self.bin_minutes))
        t0 = pd.Timestamp(utc(start)) if start is not None else ts.min()
        t0 = t0.floor(width)
        t1 = pd.Timestamp(utc(end)) if end is not None else ts.max() + width
        n_bins = max(1, int(np.ceil((t1 - t0) / width)))
        b = ((ts - t0) / width).to_numpy()
        ok = (b >= 0) & (b < n_bins)
        b = np.floor(np.where(ok, b, -1)).astype(np.int64)
        # hour-of-day profile of all comments, learned online (bin by bin)
        all_counts = np.bincount(b[ok], minlength=n_bins).astype(np.float64)
        bin_hour = pd.date_range(t0, periods=n_bins, freq=width).hour.to_numpy()
        m = mentions(c["text"].tolist(), kws).to_numpy()
        neg = (c["label"] == "negative").to_numpy() if "label" in c else np.zeros(len(c), bool)
        secs = ((ts - pd.Timestamp(0, tz="UTC")).dt.total_seconds()).to_numpy()
        users = c["user_id"].astype(str).to_numpy() if "user_id" in c else None
        alerts: list[Alert] = []
        for j, kw in enumerate(kws):
            for metric in metrics:
                sel = m[:, j] & ok & (neg if metric == "negative" else True)
                sel = self._one_voice(sel, secs, users)
                x = np.bincount(b[sel], minlength=n_bins).astype(np.float64)
                for s0, s1, base, obs, score in self._cusum(x, all_counts, bin_hour):
                    ws, we = t0 + width * s0, t0 + width * (s1 + 1)
                    rows = np.flatnonzero(sel & (b >= s0) & (b <= s1))[: self.n_samples]
                    samples = [{"ts": ts.iloc[r].isoformat(),
                                "item_id": str(c["item_id"].iloc[r]) if "item_id" in c
                                else None, "text": str(c["text"].iloc[r])[:280]}
                               for r in rows]
                    aid = hashlib.sha1(f"{kw}|{metric}|{ws.isoformat()}".encode()).hexdigest()
                    alerts.append(Alert(aid[:16], kw, metric, ws.to_pydatetime(),
                                        we.to_pydatetime(), we.to_pydatetime(), base,
                                        int(obs), score, samples))
        alerts.sort(key=lambda a: (a.detected_at, a.keyword, a.metric))
        return alerts

    def _one_voice(self, sel: np.ndarray, secs: np.ndarray, users: np.ndarray | None
                   ) -> np.ndarray:
        """``sel`` less the comments of a user within ``dedup_minutes`` of their last
        counted one (time order; only the past decides, as at every bin)."""
        gap = float(self.dedup_minutes) * 60.0
        if users is None or gap <= 0 or not sel.any():
            return sel
        rows = np.flatnonzero(sel)
        rows = rows[np.argsort(secs[rows], kind="stable")]
        keep = sel.copy()
        last: dict[str, float] = {}
        for r in rows:
            u = users[r]
            t = secs[r]
            if u in last and t - last[u] < gap:
                keep[r] = False
            else:
                last[u] = t
        return keep

    def _cusum(self, x: np.ndarray, all_counts: np.ndarray, bin_hour: np.ndarray
               ) -> list[tuple[int, int, float, float, float]]:
        """(first bin, last bin, baseline, observed, score) of each alert of one series."""
        per_h = 60.0 / float(self.bin_minutes)
        floor = self.floor_per_hour / per_h
        min_step = self.min_rate_per_hour / per_h
        decay = 0.5 ** (1.0 / (self.halflife_hours * per_h))
        # the warm-up counts from the first comment seen, not from the window's start (a
        # window opened long before the data would otherwise alert on a cold baseline)
        seen = np.flatnonzero(all_counts > 0)
        warm = (int(seen[0]) if len(seen) else 0) + int(np.ceil(self.warmup_hours * per_h))
        cool = int(np.ceil(self.cooldown_hours * per_h))
        hour_n = [1.0] * 24  # Laplace prior: a flat profile
        hour_bins = [1.0] * 24
        # their sums, kept as they grow (whole counts: exactly np.sum's value, per bin)
        n_total, bins_total = 24.0, 24.0
        ew_sum, ew_w = 0.0, 0.0
        s, run_start, run_obs, run_base = 0.0, -1, 0.0, 0.0
        quiet_until = -1
        out: list[tuple[int, int, float, float, float]] = []
        # Python floats, not numpy scalars: the same IEEE arithmetic, several times faster
        # per bin (the log stays numpy's, so every figure is the same to the last bit)
        xs, counts, hours = x.tolist(), all_counts.tolist(), bin_hour.tolist()
        # numpy's log of each ratio, kept per value: a quiet series sits at the floor, so
        # its ratio repeats bin after bin (the same input gives numpy's same output)
        log, logs = np.log, {}
        ratio = self.ratio
        for t in range(len(xs)):
            h = int(hours[t])
            xt = xs[t]
            prof = (hour_n[h] / hour_bins[h]) / (n_total / bins_total)
            rate = ew_sum / ew_w if ew_w > 0 else 0.0
            # max(a, b) written out (b if b > a else a: the same value, NaN and -0.0 too)
            v = rate * prof
            lam0 = floor if floor > v else v
            v, w = ratio * lam0, lam0 + min_step
            lam1 = w if w > v else v
            q = lam1 / lam0
            lg = logs.get(q)
            if lg is None:
                lg = logs[q] = float(log(q))
            inc = xt * lg - (lam1 - lam0)
            if t >= quiet_until:
                if s <= 0.0:
                    run_start, run_obs, run_base = t, 0.0, 0.0
                v = s + inc
                s = v if v > 0.0 else 0.0
                if s > 0:
                    run_obs += xt
                    run_base += lam0
                if t >= warm and s > self.threshold and run_obs >= self.min_count:
                    out.append((run_start, t, run_base, run_obs, s))
                    s, quiet_until = 0.0, t + cool
            # learn the baseline from bins outside alerts (a burst is not the new normal)
            if t >= quiet_until:
                ew_sum = decay * ew_sum + xt / (1e-9 if 1e-9 > prof else prof)
                ew_w = decay * ew_w + 1.0
            hour_n[h] += counts[t]
            hour_bins[h] += 1.0
            n_total += counts[t]
            bins_total += 1.0
        return out


def alerts_frame(alerts: Sequence[Alert]) -> pd.DataFrame:
    """Alerts as a printable table (one row each, the first sample comment's text)."""
    cols = ["detected_at", "keyword", "metric", "window_start", "window_end", "baseline",
            "observed", "score", "sample"]
    if not alerts:
        return pd.DataFrame(columns=cols)
    return pd.DataFrame([{
        "detected_at": a.detected_at.isoformat(), "keyword": a.keyword, "metric": a.metric,
        "window_start": a.window_start.isoformat(), "window_end": a.window_end.isoformat(),
        "baseline": round(a.baseline, 2), "observed": a.observed, "score": round(a.score, 2),
        "sample": a.samples[0]["text"][:80] if a.samples else ""} for a in alerts])[cols]


def match_bursts(alerts: Sequence[Alert], bursts: Sequence[Any], *,
                 within: timedelta = timedelta(hours=1), metric: str = "negative"
                 ) -> dict[str, Any]:
    """Score alerts against known bursts (objects or dicts with ``keyword``, ``onset``,
    ``duration``/``duration_h``).

    A burst is **detected** when an alert of ``metric`` about its keyword fires in
    ``[onset, onset + within]``. An alert is **true** when it fires about a burst's keyword
    in ``[onset, onset + duration + within]``. Returns precision, recall, the delays and
    counts.
    """
    def fields(b: Any) -> tuple[str, datetime, timedelta]:
        if isinstance(b, dict):
            dur = b.get("duration") or timedelta(hours=float(b["duration_h"]))
            on = b["onset"]
            on = datetime.fromisoformat(on) if isinstance(on, str) else on
            return b["keyword"], utc(on), dur
        return b.keyword, utc(b.onset), b.duration

    bs = [fields(b) for b in bursts]
    al = [a for a in alerts if a.metric == metric]
    delays: list[float] = []
    detected = 0
    for kw, on, _ in bs:
        hits = [(a.detected_at - on).total_seconds() for a in al
                if a.keyword.lower() == kw.lower() and on <= a.detected_at <= on + within]
        if hits:
            detected += 1
            delays.append(min(hits) / 60.0)
    true = sum(1 for a in al if any(
        a.keyword.lower() == kw.lower() and on <= a.detected_at <= on + dur + within
        for kw, on, dur in bs))
    return {"bursts": len(bs), "detected": detected, "alerts": len(al), "true_alerts": true,
            "precision": true / len(al) if al else (1.0 if not bs else 0.0),
            "recall": detected / len(bs) if bs else float("nan"),
            "delay_minutes": delays}
