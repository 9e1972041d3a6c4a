"""The pieces of a training run: input pipeline, losses, schedule, checkpoint, validation, calibration."""

from __future__ import annotations

import json
import math
import os
import time
import zipfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from ml.augment import augment_batch
from ml.dataset import FaceDataset
from ml.metrics import distance_to_range, interval_coverage, is_weak_range
from ml.model import AGE_BINS, MAX_AGE, build_model, predict_with_flip, summarize_ages
from ml.sampling import MixedSampler

L1_WEIGHT = 0.1  # weight of the distance from E[age] to the label next to the distribution loss
# Weight of the pull towards an even spread inside an age group: without it the mass may sit in a
# narrow peak anywhere in the group, and the intervals claim a precision the label never gave.
RANGE_SPREAD_WEIGHT = 0.25
INTERVAL_LEVEL = 0.8
CHECKPOINT_STATE = "mairror_training_state.json"  # the run's progress, stored inside the checkpoint file


def age_sigma(age):
    """Width of the target age distribution: a year for babies, ~6 years at 60.

    Faces age faster in childhood, so labels are more exact there; a fixed sigma would
    blur the babies' targets or make the adults' too sharp.
    """
    return 1.0 + 0.08 * age


def age_targets(age_min: np.ndarray, age_max: np.ndarray) -> np.ndarray:
    """``[age_min, age_max, g(0), ..., g(MAX_AGE)]`` per face, float32.

    For an exact age ``g`` is a discretised Gaussian around it (a target distribution); for a
    range it is the indicator of the years inside it (the loss then asks only that the
    predicted mass fall there, not how it is spread inside).
    """
    low = np.minimum(np.asarray(age_min, dtype=np.float64), MAX_AGE)[:, None]
    high = np.minimum(np.asarray(age_max, dtype=np.float64), MAX_AGE)[:, None]
    years = np.arange(AGE_BINS, dtype=np.float64)[None, :]
    gaussian = np.exp(-0.5 * np.square((years - low) / age_sigma(low)))
    gaussian /= gaussian.sum(axis=1, keepdims=True)
    inside = ((years >= low) & (years <= high)).astype(np.float64)
    g = np.where(low == high, gaussian, inside)
    return np.concatenate([low, high, g], axis=1).astype(np.float32)


def _expected_age(logits):
    return tf.reduce_sum(tf.nn.softmax(logits) * tf.range(AGE_BINS, dtype=tf.float32), axis=1)


def _distance_to_label(expected, low, high):
    """Years from the expected age to the label's range: 0 inside it, |E - age| for an exact age."""
    return tf.nn.relu(low - expected) + tf.nn.relu(expected - high)


@keras.saving.register_keras_serializable(package="mairror")
def age_loss(y_true, logits):
    """Exact age: cross-entropy to the target distribution. Range: -log P(age in range) plus
    ``RANGE_SPREAD_WEIGHT`` x KL(the distribution inside the range || an even spread over it), i.e.
    the entropy it lacks, at most log(years in the range): a gentle, bounded pull, not a target.
    Both: plus ``L1_WEIGHT`` x the distance from the expected age to the label (0 inside a range).
    """
    low, high, target = y_true[:, 0], y_true[:, 1], y_true[:, 2:]
    log_p = tf.nn.log_softmax(logits)
    cross_entropy = -tf.reduce_sum(target * log_p, axis=1)
    # -log P(range), in log space: a confidently wrong model still gets a full-strength gradient.
    log_p_range = tf.reduce_logsumexp(tf.where(target > 0, log_p, -1e9), axis=1)
    years_in_range = tf.maximum(tf.reduce_sum(target, axis=1), 1.0)
    log_p_inside = tf.where(target > 0, log_p - log_p_range[:, None], 0.0)
    uneven_spread = tf.reduce_sum(tf.exp(log_p_inside) * log_p_inside * target, axis=1) + tf.math.log(years_in_range)
    range_loss = -log_p_range + RANGE_SPREAD_WEIGHT * uneven_spread
    distribution = tf.where(tf.equal(low, high), cross_entropy, range_loss)
    return distribution + L1_WEIGHT * _distance_to_label(_expected_age(logits), low, high)


@keras.saving.register_keras_serializable(package="mairror")
def age_mae(y_true, logits):
    """Mean distance from the expected age to the label: the MAE for exact ages."""
    return tf.reduce_mean(_distance_to_label(_expected_age(logits), y_true[:, 0], y_true[:, 1]))


def _targets(dataset: FaceDataset, indices: np.ndarray):
    genders = dataset.genders[indices].astype(np.float32)
    gender_weight = (genders >= 0).astype(np.float32)  # unknown gender (-1) does not train the gender head
    ages = age_targets(dataset.age_min[indices], dataset.age_max[indices])
    return ages, np.maximum(genders, 0)[:, None], gender_weight


def training_batches(dataset: FaceDataset, sampler: MixedSampler, batch_size: int, seed: int, start_step: int):
    """An endless tf.data pipeline of augmented batches, starting at batch ``start_step`` of the run.

    Batch ``n`` is a pure function of (seed, n): which faces (the mixed sampler) and how they
    are damaged (:mod:`ml.augment`), so a resumed run sees what the interrupted one would have.
    """
    size = dataset.crops.shape[1]

    def make(step):
        indices = sampler.draw(int(step) * batch_size, batch_size)
        crops = augment_batch(dataset.crops[indices], np.random.default_rng([seed, 1, int(step)]))
        age, gender, gender_weight = _targets(dataset, indices)
        return crops, age, gender, gender_weight

    def load(step):
        crops, age, gender, gender_weight = tf.numpy_function(
            make, [step], [tf.uint8, tf.float32, tf.float32, tf.float32], stateful=False
        )
        crops.set_shape((batch_size, size, size, 3))
        age.set_shape((batch_size, AGE_BINS + 2))
        gender.set_shape((batch_size, 1))
        gender_weight.set_shape((batch_size,))
        return (
            tf.cast(crops, tf.float32),
            {"age_logits": age, "gender": gender},
            {"age_logits": tf.ones(batch_size), "gender": gender_weight},
        )

    steps = tf.data.Dataset.range(start_step, 2**62)
    return steps.map(load, num_parallel_calls=2, deterministic=True).prefetch(4)


def compile_model(image_size: int, learning_rate: float, init_from=None, train_trunk: bool = True) -> keras.Model:
    """The model with AdamW and weight averaging (EMA); the learning rate is set by ``CosineSchedule``.

    ``train_trunk=False`` trains the two heads only, on the trunk's features as ``init_from`` has them
    (its batch norms then keep their statistics too): a fine-tune on a few hundred faces can shift and
    reshape the heads' outputs, but cannot memorise those faces in the trunk or forget the rest.
    """
    model = build_model(image_size)
    if init_from is not None:
        from ml.inference import MODEL_FILE

        model.set_weights(keras.models.load_model(init_from / MODEL_FILE, compile=False).get_weights())
    if not train_trunk:
        for layer in model.layers:
            layer.trainable = layer.name in ("age_logits", "gender")
    optimizer = keras.optimizers.AdamW(learning_rate, weight_decay=1e-4, use_ema=True, ema_momentum=0.995)
    model.compile(
        optimizer=optimizer,
        loss={"age_logits": age_loss, "gender": keras.losses.BinaryCrossentropy()},
        loss_weights={"age_logits": 1.0, "gender": 1.0},
        metrics={"age_logits": [age_mae], "gender": [keras.metrics.BinaryAccuracy(name="accuracy")]},
    )
    return model


def save_checkpoint(model: keras.Model, path: Path, state: dict) -> None:
    """One file that resumes the run: the model with its optimizer (EMA included) and ``state``.

    Written beside and renamed over the old one, so an interruption leaves the previous
    checkpoint whole. The state rides inside the ``.keras`` zip as one more member.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.keras")
    model.save(tmp)
    with zipfile.ZipFile(tmp, "a") as archive:
        archive.writestr(CHECKPOINT_STATE, json.dumps(state))
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> tuple[keras.Model, dict]:
    with zipfile.ZipFile(path) as archive:
        state = json.loads(archive.read(CHECKPOINT_STATE))
    return keras.models.load_model(path), state


def read_checkpoint_state(path: Path) -> dict | None:
    if not path.exists():
        return None
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read(CHECKPOINT_STATE))


class CosineSchedule(keras.callbacks.Callback):
    """Warm-up then cosine decay over the run, measured in steps or in time, whichever runs out first.

    On a busy CPU the epochs may not all fit in the time budget; stretching the schedule
    over the budget still ends the run with a fully decayed learning rate, instead of
    stopping half-way down the curve. ``step`` and ``elapsed`` come from the checkpoint, so
    a resumed run continues the same schedule.
    """

    def __init__(self, peak: float, total_steps: int, budget_seconds: float, step: int = 0, elapsed: float = 0.0):
        super().__init__()
        self.peak, self.total_steps, self.budget = peak, total_steps, budget_seconds
        self.warmup = max(1, min(total_steps // 20, 500))
        self.step = step
        self.elapsed_before = elapsed
        self.started = time.time()

    def on_train_begin(self, logs=None):
        self.started = time.time()

    def elapsed(self) -> float:
        return self.elapsed_before + time.time() - self.started

    def progress(self) -> float:
        by_steps = self.step / self.total_steps
        by_time = self.elapsed() / self.budget if self.budget else 0.0
        return min(1.0, max(by_steps, by_time))

    def on_train_batch_begin(self, batch, logs=None):
        if self.step < self.warmup:
            rate = self.peak * (0.1 + 0.9 * self.step / self.warmup)
        else:
            rate = self.peak * 0.5 * (1 + math.cos(math.pi * self.progress()))
        self.model.optimizer.learning_rate = rate

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.progress() >= 1.0:
            self.model.stop_training = True


class SetValidation(keras.callbacks.Callback):
    """Per data set validation figures after each epoch, into the epoch's logs (and so history.csv).

    ``val_score`` sums, over the sets, the age error in units of 5 years and the gender error
    in units of 10 points: one number that no single set can carry, used to compare epochs.
    """

    def __init__(self, dataset: FaceDataset, val_idx: np.ndarray):
        super().__init__()
        self.dataset, self.val_idx = dataset, val_idx

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(set_metrics(self.model, self.dataset, self.val_idx, flip=False))


def set_metrics(model, dataset: FaceDataset, indices: np.ndarray, flip: bool = True) -> dict:
    if flip:
        logits, female = predict_with_flip(model, dataset.crops[indices])
    else:
        out = model.predict(dataset.crops[indices].astype(np.float32), batch_size=128, verbose=0)
        logits, female = out["age_logits"], out["gender"][:, 0]
    years = np.arange(AGE_BINS)
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected = (z / z.sum(axis=1, keepdims=True)) @ years
    metrics, score = {}, 0.0
    for name in np.unique(dataset.sources[indices]):
        part = dataset.sources[indices] == name
        low, high = dataset.age_min[indices][part], dataset.age_max[indices][part]
        distance = distance_to_range(expected[part], low, high)
        informative = ~is_weak_range(low, high)
        genders = dataset.genders[indices][part]
        known = genders >= 0
        age_error = float(distance[informative].mean()) if informative.any() else 0.0
        gender_accuracy = float(np.mean((female[part][known] >= 0.5) == (genders[known] == 1))) if known.any() else 1.0
        metrics[f"val_{name}_age_error"] = age_error
        metrics[f"val_{name}_gender_accuracy"] = gender_accuracy
        score += age_error / 5 + (1 - gender_accuracy) * 10
    metrics["val_score"] = score
    return metrics


class ResumableCheckpoint(keras.callbacks.Callback):
    """Saves the one-file checkpoint at the end of every epoch, with the schedule's progress."""

    def __init__(self, path: Path, schedule: CosineSchedule, config: dict, history: list[dict]):
        super().__init__()
        self.path, self.schedule, self.config, self.history = path, schedule, config, history

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}}
        self.history.append(row)
        state = {
            "epoch": epoch + 1,
            "step": self.schedule.step,
            "elapsed": self.schedule.elapsed(),
            "finished": bool(self.model.stop_training),
            "config": self.config,
            "history": self.history,
        }
        save_checkpoint(self.model, self.path, state)


class TqdmProgress(keras.callbacks.Callback):
    """One tqdm bar per epoch, with the running loss; the epoch's metrics are logged at its end."""

    def __init__(self, steps: int):
        super().__init__()
        self.steps = steps
        self.bar = None

    def on_epoch_begin(self, epoch, logs=None):
        self.bar = tqdm(total=self.steps, desc=f"epoch {epoch + 1}", unit="batch", leave=False)

    def on_train_batch_end(self, batch, logs=None):
        self.bar.update(1)
        if logs and batch % 20 == 0:
            self.bar.set_postfix(loss=f"{logs.get('loss', math.nan):.3f}")

    def on_epoch_end(self, epoch, logs=None):
        self.bar.close()
        shown = {k: round(float(v), 4) for k, v in (logs or {}).items() if k.startswith("val_") or k == "loss"}
        tqdm.write(f"epoch {epoch + 1}: {shown}")


def calibrate_temperature(model: keras.Model, dataset: FaceDataset, val_idx: np.ndarray) -> tuple[float, dict]:
    """The softmax temperature whose 80% intervals come closest to 80% coverage on the worst ``val`` set.

    One temperature serves every photo, so it is chosen to keep every set honest, not the average.
    Returns it with the val metrics (per set, with flip averaging, as in serving).
    """
    logits, _ = predict_with_flip(model, dataset.crops[val_idx])
    lo, hi = dataset.age_min[val_idx], dataset.age_max[val_idx]
    informative = ~is_weak_range(lo, hi)
    sources = dataset.sources[val_idx]
    names = [name for name in np.unique(sources) if (informative & (sources == name)).any()]

    def coverage_by_set(temperature):
        _, low, high = summarize_ages(logits, temperature, INTERVAL_LEVEL)
        covered = interval_coverage(low, high, lo, hi)
        return {name: float(covered[informative & (sources == name)].mean()) for name in names}

    temperatures = np.round(np.arange(0.5, 4.01, 0.05), 2)

    def worst_miss(temperature):
        return max([abs(c - INTERVAL_LEVEL) for c in coverage_by_set(temperature).values()] or [0.0])

    best = float(min(temperatures, key=worst_miss))
    metrics = {"n": int(len(val_idx)), **set_metrics(model, dataset, val_idx, flip=True)}
    metrics["interval_coverage"] = coverage_by_set(best)
    metrics["interval_coverage_uncalibrated"] = coverage_by_set(1.0)
    return best, metrics
