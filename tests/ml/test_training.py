"""The range-label age loss, its targets and metric, and the one-file checkpoint."""

import numpy as np
import pytest
import tensorflow as tf

from ml.model import AGE_BINS
from ml.training import age_loss, age_mae, age_targets, compile_model, load_checkpoint, save_checkpoint

YEARS = np.arange(AGE_BINS)


def peaked_logits(centre: float, width: float = 1.0) -> np.ndarray:
    return (-0.5 * ((YEARS - centre) / width) ** 2).astype(np.float32)


def loss(age_min, age_max, logits) -> float:
    y_true = tf.constant(age_targets(np.array([age_min]), np.array([age_max])))
    return float(age_loss(y_true, tf.constant(logits[None, :]))[0])


def test_targets_carry_the_label_then_a_distribution_or_an_indicator():
    targets = age_targets(np.array([30, 0, 67]), np.array([30, 6, 80]))
    assert targets.shape == (3, AGE_BINS + 2)
    assert list(targets[:, 0]) == [30, 0, 67] and list(targets[:, 1]) == [30, 6, 80]
    exact, group, old = targets[:, 2:]
    assert exact.sum() == pytest.approx(1) and exact.argmax() == 30
    assert list(np.flatnonzero(group)) == list(range(7)) and set(group) == {0, 1}
    assert list(np.flatnonzero(old)) == list(range(67, 81))


def test_exact_ages_keep_the_distribution_loss_plus_l1():
    logits = peaked_logits(40, 5)
    targets = age_targets(np.array([35]), np.array([35]))[0, 2:]
    p = np.exp(logits - logits.max())
    p /= p.sum()
    expected = -(targets * np.log(p)).sum() + 0.1 * abs((p * YEARS).sum() - 35)
    assert loss(35, 35, logits) == pytest.approx(expected, rel=1e-4)


def test_a_range_costs_nothing_when_the_mass_is_spread_evenly_over_it():
    even = np.where((YEARS >= 31) & (YEARS <= 45), 0.0, -1e4).astype(np.float32)
    assert loss(31, 45, even) == pytest.approx(0, abs=1e-4)


def test_a_peak_inside_the_range_costs_a_little_the_same_anywhere_and_far_less_than_outside():
    inside = [loss(31, 45, peaked_logits(centre, 1.0)) for centre in (35, 38, 41)]
    assert max(inside) - min(inside) < 0.01  # no point inside the group is preferred
    assert 0.1 < min(inside) < 0.25 * np.log(15)  # the pull towards an even spread, bounded
    assert loss(31, 45, peaked_logits(20, 1.0)) > 5 * max(inside)  # all the mass below the range
    assert loss(31, 45, peaked_logits(60, 1.0)) > 5 * max(inside)


def test_a_confidently_wrong_prediction_still_gets_pulled_into_the_range():
    """-log P(range) in log space: the gradient stays at full strength when P(range) is ~1e-11."""
    logits = tf.Variable(peaked_logits(20, 4.0)[None, :])
    y_true = tf.constant(age_targets(np.array([46]), np.array([55])))
    with tf.GradientTape() as tape:
        value = tf.reduce_sum(age_loss(y_true, logits))
    gradient = tape.gradient(value, logits).numpy()[0]
    assert float(tf.reduce_sum(tf.nn.softmax(logits)[0, 46:56])) < 1e-9
    assert gradient[46:56].sum() < -0.99  # descent raises every logit inside the range
    assert (gradient[46:56] < 0).all()


def test_the_metric_is_the_distance_to_the_label():
    logits = np.stack([peaked_logits(40, 0.3), peaked_logits(40, 0.3), peaked_logits(40, 0.3)])
    y_true = age_targets(np.array([30, 31, 50]), np.array([30, 45, 60]))
    assert float(age_mae(tf.constant(y_true), tf.constant(logits))) == pytest.approx((10 + 0 + 10) / 3, abs=0.05)


def test_the_checkpoint_is_one_file_with_weights_optimizer_and_state(tmp_path):
    model = compile_model(32, 1e-3)
    x = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3)).astype(np.float32)
    y = {"age_logits": age_targets(np.full(8, 30), np.full(8, 30)), "gender": np.ones((8, 1), np.float32)}
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "run.keras"
    save_checkpoint(model, path, {"epoch": 1, "step": 1, "history": [{"epoch": 0}]})
    save_checkpoint(model, path, {"epoch": 2, "step": 7, "history": [{"epoch": 0}, {"epoch": 1}]})
    assert [p.name for p in tmp_path.iterdir()] == ["run.keras"]  # replaced, nothing left beside it
    restored, state = load_checkpoint(path)
    assert state["epoch"] == 2 and state["step"] == 7 and len(state["history"]) == 2
    assert int(restored.optimizer.iterations) == int(model.optimizer.iterations) == 1
    for a, b in zip(model.get_weights(), restored.get_weights(), strict=True):
        assert np.array_equal(a, b)
