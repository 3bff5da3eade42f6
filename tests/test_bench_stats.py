"""Aggregation over seeds against hand-computed values."""

import math

import pytest

from trm_rl.benchmarks.stats import (
    Estimate,
    bootstrap_interval,
    iqm,
    iqm_interval,
    paired_comparison,
    performance_profile,
    probability_of_improvement,
    summarize,
)


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


def test_interval_of_a_skewed_sample_matches_the_resampling_distribution():
    # Means of 3 draws from {0, 0, 1}: 0 with probability 8/27 (> 2.5%), 1 with 1/27 (> 2.5%).
    assert bootstrap_interval([0.0, 0.0, 1.0]) == (0.0, 1.0)
    # From {0, 0, 0, 1}: P(mean = 1) = 1/256 < 2.5%, P(mean >= 0.75) = 13/256 > 2.5%.
    assert bootstrap_interval([0.0, 0.0, 0.0, 1.0]) == (0.0, 0.75)


def test_probability_of_improvement_counts_pairs_and_half_ties():
    # Pairs (x, y): (0.9, 0.5) 1, (0.9, 0.8) 1, (0.8, 0.5) 1, (0.8, 0.8) a tie: 3.5 / 4.
    assert probability_of_improvement([0.9, 0.8], [0.5, 0.8]).value == 0.875
    assert probability_of_improvement([0.1], [0.2]).value == 0.0
    # x always [1, 1]; y resamples to [0, 0] (P = 1), [0, 1] (0.75) or [1, 1] (0.5).
    estimate = probability_of_improvement([1.0, 1.0], [0.0, 1.0])
    assert (estimate.value, estimate.low, estimate.high) == (0.75, 0.5, 1.0)


def test_stratified_iqm_pools_strata_and_resamples_each():
    # Pooled [0, 1, 2, 3, 4, 5, 6, 100]: trimming 2 from each end leaves 2, 3, 4, 5.
    estimate = iqm_interval([[0.0, 100.0, 3.0, 4.0], [1.0, 2.0, 5.0, 6.0]])
    assert estimate.value == pytest.approx(3.5)
    # One stratum {0, 1}: resamples [0, 0], [0, 1], [1, 1] have IQMs 0, 0.5, 1.
    assert iqm_interval([[0.0, 1.0]]) == Estimate(0.5, 0.0, 1.0)
    # A constant stratum never moves: the interval comes from the other one alone.
    pooled = iqm_interval([[0.0, 1.0], [0.5, 0.5]])
    assert (pooled.low, pooled.high) == (0.25, 0.75)
    assert iqm_interval([[0.3, 0.3]]) == Estimate(0.3, 0.3, 0.3)


def test_performance_profile_is_the_fraction_of_runs_above_each_level():
    profile = performance_profile([0.1, 0.5, 0.9, 1.0], [0.0, 0.5, 0.95, 1.0])
    assert profile.tolist() == [1.0, 0.5, 0.25, 0.0]


def test_missing_values_are_dropped():
    summary = summarize([1.0, float("nan"), None, 3.0])
    assert summary.mean == 2.0 and summary.n == 2
    assert math.isnan(summarize([]).mean)


def test_paired_comparison_counts_discordant_episodes_and_tests_them_exactly():
    first = [True] * 10 + [False] * 2 + [True] * 5 + [False] * 3
    second = [False] * 10 + [True] * 2 + [True] * 5 + [False] * 3
    result = paired_comparison(first, second)
    assert (result.first_only, result.second_only) == (10, 2)
    assert result.p_value == pytest.approx(2 * (1 + 12 + 66) / 2**12)  # P(X <= 2), doubled
    assert paired_comparison(second, first).p_value == pytest.approx(result.p_value)
    assert paired_comparison(first, first).p_value == 1.0


def test_paired_comparison_refuses_unpaired_outcomes():
    with pytest.raises(ValueError, match="paired"):
        paired_comparison([True, False], [True])
