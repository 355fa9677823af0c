"""Bootstrap intervals that resample what is independent: passes, then the requests within each pass.

A latency line runs every prompt ``repeats`` times, one pass after another, minutes apart. Requests of one pass
share whatever the machine was doing during that pass (clocks, caches, other processes), so they are not
independent draws: resampling the requests of all passes as one pool gives an interval narrower than the
pass-to-pass spread (examples/cpu-default at 662b672: in 5 of 6 lines a pass's own tokens/s lay outside the line's
interval). :func:`hierarchical_ci` resamples two levels, as a hierarchical (cluster) bootstrap does: draw the
passes with replacement, then within every drawn pass draw its requests with replacement. With one pass it is the
ordinary bootstrap over requests, and then says nothing about pass-to-pass drift (the table says so).
"""

from __future__ import annotations

import numpy as np

RESAMPLES = 2000   # bootstrap resamples per interval
SEED = 0           # fixed: the same rows always give the same interval
LEVEL = 0.95


def _resample_indices(groups: np.ndarray, rng: np.random.Generator, resamples: int) -> np.ndarray:
    """(resamples × passes·largest pass) row indices; -1 pads a drawn pass smaller than the largest."""
    labels, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == k) for k in range(len(labels))]
    sizes = np.array([len(m) for m in members])
    width = sizes.max()
    padded = np.full((len(members), width), -1)
    for k, m in enumerate(members):
        padded[k, :len(m)] = m
    chosen = rng.integers(0, len(members), size=(resamples, len(members)))        # passes, with replacement
    inner = (rng.random((resamples, len(members), width)) * sizes[chosen][..., None]).astype(int)
    idx = padded[chosen[..., None], inner]                                         # requests within each pass
    idx[np.arange(width)[None, None, :] >= sizes[chosen][..., None]] = -1
    return idx.reshape(resamples, -1)


def hierarchical_ci(values: dict[str, np.ndarray], groups: np.ndarray, stat,
                    level: float = LEVEL) -> tuple[float, float]:
    """Percentile interval of ``stat`` over ``RESAMPLES`` two-level resamples (passes, then requests within
    each); ``groups``: the pass of each row of ``values`` (arrays of equal length). ``stat`` maps resampled
    arrays (resamples × k, NaN where a drawn pass is shorter than the largest: use nansum / nanmedian) to one
    value per resample. (nan, nan) with fewer than 2 rows."""
    n = len(groups)
    if n < 2:
        return float("nan"), float("nan")
    idx = _resample_indices(np.asarray(groups), np.random.default_rng(SEED), RESAMPLES)
    pad = idx < 0
    drawn = {}
    for k, v in values.items():
        got = np.asarray(v, dtype=float)[np.where(pad, 0, idx)]
        got[pad] = np.nan
        drawn[k] = got
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(stat(**drawn), [tail, 100 - tail])
    return float(low), float(high)


def ratio_of_sums(out, lat):
    """tokens/s of each resample: its output tokens / its latencies."""
    return np.nansum(out, axis=1) / np.nansum(lat, axis=1)


def median(t):
    return np.nanmedian(t, axis=1)


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether two intervals share a point (an empty end on either: False, nothing is claimed)."""
    if any(np.isnan(x) for x in (*a, *b)):
        return False
    return a[0] <= b[1] and b[0] <= a[1]
