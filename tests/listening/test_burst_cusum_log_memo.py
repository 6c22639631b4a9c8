"""The burst detector keeps numpy's log per ratio and writes ``max`` out: its alerts are
the ones of the plain loop (``max`` and ``np.log`` at every bin), figure for figure."""

from __future__ import annotations

import numpy as np

from feedwise.analytics.alerts import BurstDetector


def plain_cusum(d: BurstDetector, x, all_counts, bin_hour):
    """The CUSUM loop written plainly (a numpy log and ``max`` at every bin)."""
    per_h = 60.0 / float(d.bin_minutes)
    floor, min_step = d.floor_per_hour / per_h, d.min_rate_per_hour / per_h
    decay = 0.5 ** (1.0 / (d.halflife_hours * per_h))
    seen = np.flatnonzero(all_counts > 0)
    warm = (int(seen[0]) if len(seen) else 0) + int(np.ceil(d.warmup_hours * per_h))
    cool = int(np.ceil(d.cooldown_hours * per_h))
    hour_n, hour_bins = [1.0] * 24, [1.0] * 24
    n_total = bins_total = 24.0
    ew_sum = ew_w = s = run_obs = run_base = 0.0
    run_start, quiet_until, out = -1, -1, []
    for t in range(len(x)):
        h, xt = int(bin_hour[t]), float(x[t])
        prof = (hour_n[h] / hour_bins[h]) / (n_total / bins_total)
        rate = ew_sum / ew_w if ew_w > 0 else 0.0
        lam0 = max(rate * prof, floor)
        lam1 = max(d.ratio * lam0, lam0 + min_step)
        inc = xt * float(np.log(lam1 / lam0)) - (lam1 - lam0)
        if t >= quiet_until:
            if s <= 0.0:
                run_start, run_obs, run_base = t, 0.0, 0.0
            s = max(0.0, s + inc)
            if s > 0:
                run_obs += xt
                run_base += lam0
            if t >= warm and s > d.threshold and run_obs >= d.min_count:
                out.append((run_start, t, run_base, run_obs, s))
                s, quiet_until = 0.0, t + cool
        if t >= quiet_until:
            ew_sum = decay * ew_sum + xt / max(prof, 1e-9)
            ew_w = decay * ew_w + 1.0
        hour_n[h] += float(all_counts[t])
        hour_bins[h] += 1.0
        n_total += float(all_counts[t])
        bins_total += 1.0
    return out


def test_alerts_are_the_plain_loops_to_the_last_bit():
    rng = np.random.default_rng(11)
    found = 0
    for trial in range(60):
        nb = int(rng.integers(50, 700))
        lam = rng.uniform(0.01, 4) if trial % 2 else rng.uniform(0.0005, 0.02)  # quiet too
        x = rng.poisson(lam, nb).astype(float)
        if trial % 3 == 0:
            i = int(rng.integers(0, nb))
            x[i:i + 20] += rng.poisson(lam * 10 + 1, len(x[i:i + 20]))
        all_counts = x + rng.poisson(lam * 3, nb)
        hours = (np.arange(nb) + int(rng.integers(0, 24))) % 24
        d = BurstDetector(bin_minutes=float(rng.choice([15, 30, 60])),
                          ratio=float(rng.uniform(1.5, 4)),
                          threshold=float(rng.uniform(2, 8)))
        got, want = d._cusum(x, all_counts, hours), plain_cusum(d, x, all_counts, hours)
        assert repr(got) == repr(want)
        found += len(got)
    assert found > 10  # the series do burst
