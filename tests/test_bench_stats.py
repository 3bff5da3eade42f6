"""Aggregation over seeds against hand-computed values."""

import math

import pytest

from trm_rl.benchmarks.stats import bootstrap_interval, iqm, summarize


def test_iqm_trims_a_quarter_from_each_end():
    assert iqm([1, 2, 3, 4]) == pytest.approx(2.5)
    assert iqm([0, 10, 10, 10, 10, 10, 10, 100]) == pytest.approx(10.0)
    assert iqm([5.0]) == 5.0


def test_mean_and_interval():
    summary = summarize([0.2, 0.4, 0.9])
    assert summary.mean == pytest.approx(0.5)
    assert summary.n == 3
    assert 0.2 <= summary.low < summary.mean < summary.high <= 0.9


def test_interval_of_two_values_spans_them():
    low, high = bootstrap_interval([0.0, 1.0])
    assert low == 0.0 and high == 1.0


def test_interval_is_degenerate_for_equal_or_single_values():
    assert bootstrap_interval([0.7, 0.7, 0.7]) == pytest.approx((0.7, 0.7))
    assert bootstrap_interval([0.3]) == (0.3, 0.3)


def test_interval_is_reproducible():
    values = [0.1, 0.5, 0.55, 0.8, 0.95]
    assert bootstrap_interval(values) == bootstrap_interval(values)


def test_missing_values_are_dropped():
    summary = summarize([1.0, float("nan"), None, 3.0])
    assert summary.mean == 2.0 and summary.n == 2
    assert math.isnan(summarize([]).mean)
