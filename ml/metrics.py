"""Scoring ages against exact or range labels (numpy only: evaluation, training and benchmarks share it).

A label is the inclusive range ``[age_min, age_max]``; an exact age is ``[age, age]``. The
error of a predicted age is its distance to the range (0 inside it), which is the absolute
error for an exact age. A range wider than :data:`WEAK_RANGE_YEARS` (SCUT's 15-60) only
bounds the age: it is reported as the share inside it, never as an error or a coverage.
"""

from __future__ import annotations

import numpy as np

WEAK_RANGE_YEARS = 20


def distance_to_range(predicted, age_min, age_max) -> np.ndarray:
    predicted = np.asarray(predicted, dtype=np.float64)
    return np.maximum(np.asarray(age_min) - predicted, 0) + np.maximum(predicted - np.asarray(age_max), 0)


def signed_offset(predicted, age_min, age_max) -> np.ndarray:
    """How far below (negative) or above (positive) the range a prediction lies; 0 inside."""
    predicted = np.asarray(predicted, dtype=np.float64)
    return np.minimum(predicted - np.asarray(age_min), 0) + np.maximum(predicted - np.asarray(age_max), 0)


def interval_coverage(low, high, age_min, age_max) -> np.ndarray:
    """Per face, the chance that the interval ``[low, high]`` holds the true age.

    Exact age: 1 or 0. Range label: the share of the range's years inside the interval, i.e. the
    coverage to expect if the true age is spread evenly over the range (each year counts from
    half a year before to half a year after it).
    """
    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    lo, hi = np.asarray(age_min, dtype=np.float64), np.asarray(age_max, dtype=np.float64)
    exact = ((low <= lo) & (lo <= high)).astype(np.float64)
    overlap = np.clip(np.minimum(high, hi + 0.5) - np.maximum(low, lo - 0.5), 0, None) / (hi - lo + 1)
    return np.where(lo == hi, exact, np.clip(overlap, 0, 1))


def is_weak_range(age_min, age_max) -> np.ndarray:
    return np.asarray(age_max) - np.asarray(age_min) > WEAK_RANGE_YEARS
