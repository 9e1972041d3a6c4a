"""The mixed sampler draws each set at its share and lifts rare strata as documented."""

from collections import Counter

import numpy as np
import pytest

from ml.sampling import MixedSampler, age_band, sampling_weights, strata


def toy_sets():
    """A big set dominated by young adults, a small one with a rare elderly group."""
    sources = np.array(["big"] * 900 + ["small"] * 100)
    age_min = np.array([25] * 800 + [70] * 100 + [0] * 90 + [67] * 10)
    age_max = np.array([25] * 800 + [70] * 100 + [6] * 90 + [80] * 10)
    genders = np.array([0, 1] * 500)
    races = np.array(["a"] * 1000)
    return sources, strata(age_min, age_max, genders, races)


def test_range_labels_fall_in_the_band_of_their_middle():
    assert age_band(0, 6) == 0 and age_band(7, 12) == 1 and age_band(67, 80) == 7 and age_band(30, 30) == 3
    assert strata([15], [60], [1], ["east_asian"]) == [(-1, 1, "east_asian")]  # a weak bound is no band


def test_draws_follow_the_set_shares_whatever_their_sizes():
    sources, keys = toy_sets()
    weights = sampling_weights(sources, keys, {"big": 0.3, "small": 0.7})
    sampler = MixedSampler(np.arange(len(sources)), weights, seed=1)
    drawn = np.concatenate([sampler.draw(position, 500) for position in range(0, 40_000, 500)])
    share_small = (sources[drawn] == "small").mean()
    assert abs(share_small - 0.7) < 0.01


@pytest.mark.parametrize("balance", [0.0, 0.5, 1.0])
def test_balance_lifts_rare_strata_by_the_documented_power(balance):
    sources, keys = toy_sets()
    weights = sampling_weights(sources, keys, {"big": 1.0, "small": 1.0}, balance=balance)
    big = np.flatnonzero(sources == "big")
    mass = Counter()
    for i in big:
        mass[keys[i][0]] += weights[i]
    young, old = mass[age_band(25, 25)], mass[age_band(70, 70)]
    # Each stratum's mass is count ** (1 - balance): 800 young-adult and 100 elderly faces, split by gender.
    expected = (400 / 50) ** (1 - balance)
    assert young / old == pytest.approx(expected, rel=1e-6)
    assert weights.sum() == pytest.approx(1.0)


def test_every_set_needs_a_share():
    sources, keys = toy_sets()
    with pytest.raises(ValueError, match="small"):
        sampling_weights(sources, keys, {"big": 1.0})


def test_draws_are_a_function_of_seed_and_position_only():
    sources, keys = toy_sets()
    weights = sampling_weights(sources, keys, {"big": 0.5, "small": 0.5})
    a, b = MixedSampler(np.arange(1000), weights, seed=3), MixedSampler(np.arange(1000), weights, seed=3)
    assert np.array_equal(a.draw(640, 64), b.draw(640, 64))
    assert not np.array_equal(a.draw(0, 64), a.draw(64, 64))
    assert not np.array_equal(a.draw(0, 64), MixedSampler(np.arange(1000), weights, seed=4).draw(0, 64))
