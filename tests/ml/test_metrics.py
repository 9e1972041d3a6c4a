"""Scoring against exact ages and age groups."""

import numpy as np
import pytest

from ml.metrics import distance_to_range, interval_coverage, is_weak_range, signed_offset


def test_distance_is_zero_inside_and_the_absolute_error_for_exact_ages():
    assert list(distance_to_range([5, 40, 50, 33], [31, 31, 31, 30], [45, 45, 45, 30])) == [26, 0, 5, 3]
    assert list(signed_offset([5, 40, 50], [31, 31, 31], [45, 45, 45])) == [-26, 0, 5]


def test_coverage_of_a_range_is_the_share_of_its_years_inside_the_interval():
    # Interval 35.5..45.5 holds 10 of the 15 years 31..45; a disjoint one none; a wider one all.
    covered = interval_coverage([35.5, 50, 20], [45.5, 60, 70], [31, 31, 31], [45, 45, 45])
    assert covered == pytest.approx([10 / 15, 0, 1])
    assert list(interval_coverage([28, 31], [32, 40], [30, 30], [30, 30])) == [1, 0]  # exact ages


def test_a_weak_bound_is_told_apart():
    assert list(is_weak_range([15, 31, 30], [60, 45, 30])) == [True, False, False]


def test_coverage_bounds():
    rng = np.random.default_rng(0)
    low = rng.uniform(0, 60, 100)
    covered = interval_coverage(low, low + rng.uniform(0, 30, 100), np.full(100, 20), np.full(100, 30))
    assert ((covered >= 0) & (covered <= 1)).all()
