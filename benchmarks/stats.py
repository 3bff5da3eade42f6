"""Aggregates over seeds: mean, 95% percentile-bootstrap interval, interquartile mean."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class Summary:
    """One metric over seeds."""

    mean: float
    low: float
    """Lower end of the 95% percentile-bootstrap interval of the mean."""
    high: float
    """Upper end of the 95% percentile-bootstrap interval of the mean."""
    iqm: float
    """Interquartile mean: the mean of the middle 50% (25% trimmed from each end)."""
    n: int


def iqm(values: Sequence[float]) -> float:
    """Interquartile mean (``scipy.stats.trim_mean`` with 25% cut from each end)."""
    return float(stats.trim_mean(np.asarray(values, dtype=float), 0.25))


def bootstrap_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean; degenerate for one value or equal values."""
    data = np.asarray(values, dtype=float)
    if data.size < 2 or np.all(data == data[0]):
        return float(data.mean()), float(data.mean())
    result = stats.bootstrap(
        (data,),
        np.mean,
        n_resamples=BOOTSTRAP_RESAMPLES,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(BOOTSTRAP_SEED),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def summarize(values: Sequence[float]) -> Summary:
    """Mean, 95% bootstrap interval and IQM of finite ``values`` (NaNs are dropped)."""
    data = [float(v) for v in values if v is not None and np.isfinite(v)]
    if not data:
        nan = float("nan")
        return Summary(nan, nan, nan, nan, 0)
    low, high = bootstrap_interval(data)
    return Summary(float(np.mean(data)), low, high, iqm(data), len(data))
