"""Aggregates over seeds as RL papers report them (Agarwal et al. 2021, "Deep RL at the Edge
of the Statistical Precipice", the rliable practice), on ``scipy.stats``:

- interquartile mean (IQM) with a 95% stratified percentile-bootstrap interval (seeds
  resampled within each env, :func:`iqm_interval`);
- the probability of improvement ``P(X > Y)``, the chance that a run of one agent scores
  above a run of another (ties count a half), with its bootstrap interval
  (:func:`probability_of_improvement`);
- performance profiles: the fraction of runs scoring above each threshold
  (:func:`performance_profile`);
- mean with a 95% percentile-bootstrap interval (:func:`summarize`);
- paired success on the same episodes, with the exact McNemar test
  (:func:`paired_comparison`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95


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


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its 95% bootstrap interval."""

    value: float
    low: float
    high: float


def iqm(values: Sequence[float]) -> float:
    """Interquartile mean (``scipy.stats.trim_mean`` with 25% cut from each end)."""
    return float(stats.trim_mean(np.asarray(values, dtype=float), 0.25))


def _trimmed(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
    """IQM of the samples pooled along ``axis`` (vectorised for ``scipy.stats.bootstrap``)."""
    return stats.trim_mean(np.concatenate(samples, axis=axis), 0.25, axis=axis)


def _interval(samples: list[np.ndarray], statistic, value: float) -> Estimate:
    """Percentile-bootstrap interval of ``statistic(*samples, axis=-1)`` with every sample
    resampled independently (stratified); a one-run sample stays as it is (its only
    resample), and the interval is degenerate when no sample can vary."""
    varying = [i for i, s in enumerate(samples) if s.size > 1 and not np.all(s == s[0])]
    if not varying:
        return Estimate(value, value, value)
    moving = [i for i, s in enumerate(samples) if s.size > 1]

    def resampled(*drawn: np.ndarray, axis: int = -1) -> np.ndarray:
        batch = drawn[0].shape[:-1]
        full = [np.broadcast_to(s, (*batch, s.size)) for s in samples]
        for index, draw in zip(moving, drawn, strict=True):
            full[index] = draw
        return statistic(*full, axis=axis)

    result = stats.bootstrap(
        tuple(samples[i] for i in moving),
        resampled,
        n_resamples=BOOTSTRAP_RESAMPLES,
        confidence_level=CONFIDENCE,
        method="percentile",
        vectorized=True,
        paired=False,
        rng=np.random.default_rng(BOOTSTRAP_SEED),
    )
    interval = result.confidence_interval
    return Estimate(value, float(interval.low), float(interval.high))


def _finite(values: Sequence[float]) -> np.ndarray:
    return np.asarray([float(v) for v in values if v is not None and np.isfinite(v)])


def iqm_interval(scores: Sequence[Sequence[float]]) -> Estimate:
    """IQM of all runs pooled over strata (e.g. envs), with the 95% stratified bootstrap
    interval: each stratum's runs (seeds) are resampled with replacement separately.

    Args:
        scores: one sequence of run scores per stratum (one stratum: one env's seeds).
    """
    samples = [_finite(s) for s in scores]
    samples = [s for s in samples if s.size]
    if not samples:
        nan = float("nan")
        return Estimate(nan, nan, nan)
    return _interval(samples, _trimmed, float(_trimmed(*samples)))


def _improvement(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """``P(X > Y) + P(X = Y) / 2`` over all pairs of the last axis (vectorised)."""
    x, y = np.moveaxis(x, axis, -1), np.moveaxis(y, axis, -1)
    greater = (x[..., :, None] > y[..., None, :]).mean(axis=(-2, -1))
    equal = (x[..., :, None] == y[..., None, :]).mean(axis=(-2, -1))
    return greater + 0.5 * equal


def probability_of_improvement(x: Sequence[float], y: Sequence[float]) -> Estimate:
    """The probability that a run of X scores above a run of Y, ties counting a half
    (the Mann-Whitney ``U / (n m)``), with the 95% bootstrap interval (X's and Y's runs
    resampled separately)."""
    xs, ys = _finite(x), _finite(y)
    if not (xs.size and ys.size):
        nan = float("nan")
        return Estimate(nan, nan, nan)
    value = float(stats.mannwhitneyu(xs, ys).statistic / (xs.size * ys.size))
    return _interval([xs, ys], _improvement, value)


def performance_profile(scores: Sequence[float], thresholds: Sequence[float]) -> np.ndarray:
    """Fraction of runs whose score exceeds each threshold (``[len(thresholds)]``)."""
    data = _finite(scores)
    return (data[None, :] > np.asarray(thresholds, dtype=float)[:, None]).mean(axis=1)


def bootstrap_interval(
    values: Sequence[float], confidence: float = CONFIDENCE
) -> tuple[float, float]:
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
    data = _finite(values)
    if not data.size:
        nan = float("nan")
        return Summary(nan, nan, nan, nan, 0)
    low, high = bootstrap_interval(data)
    return Summary(float(np.mean(data)), low, high, iqm(data), int(data.size))


@dataclass(frozen=True)
class PairedComparison:
    """Two agents' binary outcomes on the same episodes (an exact McNemar test)."""

    first_only: int
    """Episodes the first agent succeeded on and the second failed."""
    second_only: int
    """Episodes the second agent succeeded on and the first failed."""
    p_value: float
    """Two-sided exact McNemar p-value: the chance of a split at least this uneven of the
    discordant episodes if either agent were equally likely to win each of them."""


def paired_comparison(first: Sequence[bool], second: Sequence[bool]) -> PairedComparison:
    """Compare paired success indicators (``first[i]`` and ``second[i]`` from episode ``i``)."""
    a = np.asarray(first, dtype=bool)
    b = np.asarray(second, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(
            f"first and second must be paired 1-D outcomes, got {a.shape} and {b.shape}"
        )
    first_only = int((a & ~b).sum())
    second_only = int((b & ~a).sum())
    discordant = first_only + second_only
    p_value = stats.binomtest(first_only, discordant).pvalue if discordant else 1.0
    return PairedComparison(first_only, second_only, float(p_value))
