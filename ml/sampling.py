"""The training mix: how often each face is drawn, so that no data set and no age band drowns.

Two levels:

* each data set gets a fixed share of every batch (``shares``, e.g. UTKFace 0.5, the Korean
  family set 0.35, SCUT 0.15), whatever its size;
* inside a set, faces are grouped into strata (age band x gender x race, where the labels have
  them) and a face is drawn with probability proportional to ``count(its stratum) ** -balance``:
  0 keeps the set's own proportions, 1 makes every stratum equally frequent, and the default
  0.5 lifts rare groups (the over-60s, the Korean grandparents) without repeating a handful of
  faces hundreds of times.

Draws are a pure function of (seed, position in the run): a resumed run draws exactly what the
interrupted one would have, with no sampler state to save.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

# Age bands for balancing (inclusive years). A range label falls in the band of its middle.
BALANCE_BANDS = ((0, 6), (7, 12), (13, 19), (20, 30), (31, 45), (46, 55), (56, 66), (67, 200))
DEFAULT_BALANCE = 0.5


def age_band(age_min: int, age_max: int) -> int:
    middle = (age_min + age_max) / 2
    return next(i for i, (low, high) in enumerate(BALANCE_BANDS) if middle <= high + 0.5)


def strata(age_min, age_max, genders, races, wide_range: int = 20) -> list[tuple]:
    """One key per face. A range wider than ``wide_range`` years (a weak bound such as 15-60) is no band."""
    return [
        (age_band(lo, hi) if hi - lo <= wide_range else -1, int(g), str(r))
        for lo, hi, g, r in zip(age_min, age_max, genders, races, strict=True)
    ]


def sampling_weights(sources, keys: list[tuple], shares: dict[str, float], balance: float = DEFAULT_BALANCE):
    """Probability of drawing each face: set shares times tempered inverse stratum frequency."""
    sources = np.asarray(sources)
    missing = set(np.unique(sources)) - set(shares)
    if missing:
        raise ValueError(f"no share given for data set(s) {', '.join(sorted(missing))}")
    total = sum(shares[name] for name in np.unique(sources))
    weights = np.zeros(len(sources), dtype=np.float64)
    for name in np.unique(sources):
        members = np.flatnonzero(sources == name)
        counts = Counter(keys[i] for i in members)
        raw = np.array([counts[keys[i]] ** -balance for i in members])
        weights[members] = shares[name] / total * raw / raw.sum()
    return weights


class MixedSampler:
    """Face indices for any stretch of a run, reproducible from (seed, position)."""

    def __init__(self, indices: np.ndarray, weights: np.ndarray, seed: int):
        self.indices = np.asarray(indices)
        self.cumulative = np.cumsum(weights / weights.sum())
        self.cumulative[-1] = 1.0
        self.seed = seed

    def draw(self, first_position: int, count: int) -> np.ndarray:
        """Indices of the faces at positions ``first_position`` .. ``first_position + count - 1``."""
        rng = np.random.default_rng([self.seed, first_position])
        return self.indices[np.searchsorted(self.cumulative, rng.random(count), side="right")]
