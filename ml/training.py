"""The pieces of a training run: input pipeline, losses, schedule, callbacks, calibration."""

from __future__ import annotations

import json
import math
import time

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from ml.dataset import FaceDataset
from ml.model import AGE_BINS, MAX_AGE, build_model, predict_with_flip, summarize_ages

L1_WEIGHT = 0.1  # weight of |E[age] - age| next to the distribution loss
INTERVAL_LEVEL = 0.8


def age_sigma(age):
    """Width of the target age distribution: a year for babies, ~6 years at 60.

    Faces age faster in childhood, so labels are more exact there; a fixed sigma would
    blur the babies' targets or make the adults' too sharp.
    """
    return 1.0 + 0.08 * age


def soft_age_targets(ages: tf.Tensor) -> tf.Tensor:
    """``[age, p(0), ..., p(MAX_AGE)]`` per face: the true age, then a discretised Gaussian."""
    ages = tf.cast(tf.minimum(ages, MAX_AGE), tf.float32)[:, None]
    years = tf.range(AGE_BINS, dtype=tf.float32)[None, :]
    density = tf.exp(-0.5 * tf.square((years - ages) / age_sigma(ages)))
    return tf.concat([ages, density / tf.reduce_sum(density, axis=1, keepdims=True)], axis=1)


@keras.saving.register_keras_serializable(package="mairror")
def age_loss(y_true, logits):
    """Label-distribution loss plus an L1 term on the expected age."""
    ages, targets = y_true[:, 0], y_true[:, 1:]
    cross_entropy = keras.losses.categorical_crossentropy(targets, logits, from_logits=True)
    expected = tf.reduce_sum(tf.nn.softmax(logits) * tf.range(AGE_BINS, dtype=tf.float32), axis=1)
    return cross_entropy + L1_WEIGHT * tf.abs(expected - ages)


@keras.saving.register_keras_serializable(package="mairror")
def age_mae(y_true, logits):
    expected = tf.reduce_sum(tf.nn.softmax(logits) * tf.range(AGE_BINS, dtype=tf.float32), axis=1)
    return tf.reduce_mean(tf.abs(expected - y_true[:, 0]))


def augmenter(seed: int) -> keras.Sequential:
    """Jitter that imitates detector noise and photo conditions; the crops stay aligned."""
    return keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal", seed=seed),
            keras.layers.RandomRotation(0.03, fill_mode="reflect", seed=seed),
            keras.layers.RandomZoom(0.08, fill_mode="reflect", seed=seed),
            keras.layers.RandomTranslation(0.05, 0.05, fill_mode="reflect", seed=seed),
            keras.layers.RandomBrightness(0.2, value_range=(0, 255), seed=seed),
            keras.layers.RandomContrast(0.2, seed=seed),
        ],
        name="augment",
    )


def _targets(dataset: FaceDataset, indices: np.ndarray):
    ages = tf.constant(dataset.ages[indices])
    genders = dataset.genders[indices].astype(np.float32)
    gender_weight = (genders >= 0).astype(np.float32)  # unknown gender (-1) does not train the gender head
    return soft_age_targets(ages), np.maximum(genders, 0)[:, None], gender_weight


def build_datasets(dataset: FaceDataset, train_idx, val_idx, batch_size: int, seed: int):
    """tf.data pipelines: (crops, {age, gender} targets, sample weights), augmented for training."""
    augment = augmenter(seed)

    def make(indices, training):
        age_targets, gender_targets, gender_weight = _targets(dataset, indices)
        ds = tf.data.Dataset.from_tensor_slices(
            (
                dataset.crops[indices],
                {"age_logits": age_targets, "gender": gender_targets},
                {"age_logits": tf.ones(len(indices)), "gender": gender_weight},
            )
        )
        if training:
            ds = ds.shuffle(len(indices), seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size, drop_remainder=training)
        ds = ds.map(lambda x, y, w: (tf.cast(x, tf.float32), y, w), num_parallel_calls=tf.data.AUTOTUNE)
        if training:
            ds = ds.map(
                lambda x, y, w: (tf.clip_by_value(augment(x, training=True), 0, 255), y, w),
                num_parallel_calls=tf.data.AUTOTUNE,
            )
        return ds.prefetch(tf.data.AUTOTUNE)

    steps = len(train_idx) // batch_size
    return make(train_idx, True), make(val_idx, False), steps


def compile_model(image_size: int, learning_rate: float, init_from=None) -> keras.Model:
    """The model with AdamW and weight averaging (EMA); the learning rate is set by ``CosineSchedule``."""
    model = build_model(image_size)
    if init_from is not None:
        from ml.inference import MODEL_FILE

        model.set_weights(keras.models.load_model(init_from / MODEL_FILE, compile=False).get_weights())
    optimizer = keras.optimizers.AdamW(learning_rate, weight_decay=1e-4, use_ema=True, ema_momentum=0.995)
    model.compile(
        optimizer=optimizer,
        loss={"age_logits": age_loss, "gender": keras.losses.BinaryCrossentropy()},
        loss_weights={"age_logits": 1.0, "gender": 1.0},
        metrics={"age_logits": [age_mae], "gender": [keras.metrics.BinaryAccuracy(name="accuracy")]},
    )
    return model


class CosineSchedule(keras.callbacks.Callback):
    """Warm-up then cosine decay over the run, measured in steps or in time, whichever runs out first.

    On a busy CPU the epochs may not all fit in the time budget; stretching the schedule
    over the budget still ends the run with a fully decayed learning rate, instead of
    stopping half-way down the curve. Elapsed time is saved in ``state_file`` at each
    epoch, so a resumed run continues the same schedule.
    """

    def __init__(self, peak: float, total_steps: int, budget_seconds: float, state_file):
        super().__init__()
        self.peak, self.total_steps, self.budget = peak, total_steps, budget_seconds
        self.state_file = state_file
        self.warmup = max(1, min(total_steps // 20, 500))
        self.step = 0
        self.elapsed_before = 0.0
        self.started = time.time()

    def on_train_begin(self, logs=None):
        if self.state_file.exists():
            state = json.loads(self.state_file.read_text())
            self.step, self.elapsed_before = state["step"], state["elapsed"]
        self.started = time.time()

    def progress(self) -> float:
        by_steps = self.step / self.total_steps
        by_time = (self.elapsed_before + time.time() - self.started) / self.budget if self.budget else 0.0
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

    def on_epoch_end(self, epoch, logs=None):
        elapsed = self.elapsed_before + time.time() - self.started
        self.state_file.write_text(json.dumps({"step": self.step, "elapsed": elapsed}))


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
        shown = {k: round(float(v), 4) for k, v in (logs or {}).items() if "mae" in k or "accuracy" in k or k == "loss"}
        tqdm.write(f"epoch {epoch + 1}: {shown}")


def calibrate_temperature(model: keras.Model, dataset: FaceDataset, val_idx: np.ndarray) -> tuple[float, dict]:
    """The softmax temperature whose 80% intervals cover 80% of ``val`` ages, and val metrics."""
    logits, female = predict_with_flip(model, dataset.crops[val_idx])
    ages = dataset.ages[val_idx]

    def coverage(temperature):
        _, low, high = summarize_ages(logits, temperature, INTERVAL_LEVEL)
        return float(np.mean((ages >= low) & (ages <= high)))

    temperatures = np.round(np.arange(0.5, 4.01, 0.05), 2)
    best = float(min(temperatures, key=lambda t: abs(coverage(t) - INTERVAL_LEVEL)))
    mean, _, _ = summarize_ages(logits, best, INTERVAL_LEVEL)
    genders = dataset.genders[val_idx]
    known = genders >= 0
    metrics = {
        "n": int(len(val_idx)),
        "age_mae": float(np.mean(np.abs(mean - ages))),
        "gender_accuracy": float(np.mean((female[known] >= 0.5) == (genders[known] == 1))) if known.any() else None,
        "interval_coverage": coverage(best),
        "interval_coverage_uncalibrated": coverage(1.0),
    }
    return best, metrics
