import numpy as np
import pytest

from ml.model import AGE_BINS, age_distribution, summarize_ages


@pytest.fixture
def logits():
    rng = np.random.default_rng(1)
    centres = rng.uniform(1, 90, size=50)
    years = np.arange(AGE_BINS)
    return -0.5 * ((years[None, :] - centres[:, None]) / rng.uniform(1, 8, size=(50, 1))) ** 2 + rng.normal(
        0, 0.1, (50, AGE_BINS)
    )


def test_distribution_is_a_probability(logits):
    p = age_distribution(logits, 1.3)
    assert np.allclose(p.sum(axis=1), 1) and (p >= 0).all()


def test_interval_contains_the_point_estimate(logits):
    value, low, high = summarize_ages(logits, 1.0, 0.8)
    assert (low <= value).all() and (value <= high).all()


def test_intervals_are_nested_as_the_level_grows(logits):
    previous = None
    for level in (0.5, 0.7, 0.8, 0.9, 0.95):
        _, low, high = summarize_ages(logits, 1.0, level)
        if previous is not None:
            assert (low <= previous[0] + 1e-9).all() and (high >= previous[1] - 1e-9).all()
        previous = (low, high)


def test_temperature_widens_the_interval_but_keeps_the_point(logits):
    value_cold, low_cold, high_cold = summarize_ages(logits, 0.7, 0.8)
    value_warm, low_warm, high_warm = summarize_ages(logits, 2.0, 0.8)
    assert np.allclose(value_cold, value_warm)
    assert ((high_warm - low_warm) >= (high_cold - low_cold) - 1e-9).all()


def test_a_sharp_distribution_gives_a_narrow_interval_around_its_year():
    logits = np.full((1, AGE_BINS), -50.0)
    logits[0, 30] = 0.0
    value, low, high = summarize_ages(logits, 1.0, 0.8)
    assert value[0] == pytest.approx(30, abs=1e-6)
    assert 29.5 <= low[0] <= 30 <= high[0] <= 30.5


def test_an_infants_interval_starts_at_zero_not_below():
    logits = np.full((1, AGE_BINS), -20.0)
    logits[0, 0] = 5.0  # nearly all mass on year 0

    value, low, high = summarize_ages(logits, 1.0, 0.8)

    assert low[0] == 0.0
    assert 0.0 <= value[0] <= high[0]
