"""The age-and-gender network: one small residual CNN with two heads.

One network, not two: age and gender read the same facial features, so sharing the
trunk halves the compute per face (the CPU budget is 5 ms a face) and the gender task
regularises the age task on a dataset of 18k faces.

Age is a softmax over whole years 0..MAX_AGE (label-distribution learning): the point
estimate is the distribution's mean, and the interval comes from its quantiles, so each
prediction carries its own uncertainty. Pixel scaling lives inside the model, so a
caller only hands it the uint8 crops that :mod:`ml.preprocessing` makes.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

MAX_AGE = 100
AGE_BINS = MAX_AGE + 1
WIDTHS = (32, 64, 128, 256)


def _residual_block(x, filters: int, stride: int, name: str):
    shortcut = x
    y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    y = layers.BatchNormalization(name=f"{name}_bn1")(y)
    y = layers.Activation("relu", name=f"{name}_relu1")(y)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = layers.BatchNormalization(name=f"{name}_bn2", gamma_initializer="zeros")(y)
    if stride != 1 or shortcut.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_proj")(shortcut)
        shortcut = layers.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
    return layers.Activation("relu", name=f"{name}_out")(layers.Add(name=f"{name}_add")([shortcut, y]))


def build_model(image_size: int, dropout: float = 0.3) -> keras.Model:
    """Outputs ``age_logits`` (AGE_BINS) and ``gender`` (probability of female)."""
    inputs = keras.Input((image_size, image_size, 3), name="face")
    x = layers.Rescaling(1 / 127.5, offset=-1.0, name="scale")(inputs)
    x = layers.Conv2D(WIDTHS[0], 3, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.Activation("relu", name="stem_relu")(x)
    for stage, filters in enumerate(WIDTHS):
        x = _residual_block(x, filters, stride=1 if stage == 0 else 2, name=f"stage{stage}")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    age_logits = layers.Dense(AGE_BINS, name="age_logits")(x)
    gender = layers.Dense(1, activation="sigmoid", name="gender")(x)
    return keras.Model(inputs, {"age_logits": age_logits, "gender": gender}, name="mairror_age_gender")


def predict_with_flip(model, crops: np.ndarray, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Age logits and P(female), averaged over each crop and its mirror image (training and serving).

    ``model``: a Keras model, or a callable returning its dict of outputs (``ml.tflite.LiteNetwork``).
    A crop and its mirror go through the network in the same batch, through Keras'
    compiled predict function rather than an eager call.
    """
    predict = model.predict_on_batch if isinstance(model, keras.Model) else model
    logits, female = [], []
    for start in range(0, len(crops), batch_size):
        batch = crops[start : start + batch_size].astype(np.float32)
        out = predict(np.concatenate([batch, batch[:, :, ::-1]]))
        n = len(batch)
        logits.append((out["age_logits"][:n] + out["age_logits"][n:]) / 2)
        female.append((out["gender"][:n, 0] + out["gender"][n:, 0]) / 2)
    return np.concatenate(logits), np.concatenate(female)


def age_distribution(age_logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Softmax over years, with a calibration temperature fitted on the validation split."""
    z = age_logits / temperature
    z = z - z.max(axis=-1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=-1, keepdims=True)


def summarize_ages(age_logits: np.ndarray, temperature: float, level: float):
    """Point age (the mean of the trained distribution) and the central ``level`` interval.

    The temperature only widens or narrows the interval, so calibrating it on ``val``
    never moves the point estimate that the L1 loss trained. No bound is below 0: the year-0 bin's
    lower half (-0.5..0) holds no age (a baby's interval read "(-0-4)").
    """
    years = np.arange(age_logits.shape[-1], dtype=np.float64)
    mean = age_distribution(age_logits) @ years
    cdf = np.cumsum(age_distribution(age_logits, temperature), axis=-1)
    tail = (1.0 - level) / 2.0
    low = np.array([_quantile(c, tail) for c in cdf])
    high = np.array([_quantile(c, 1.0 - tail) for c in cdf])
    return mean, np.maximum(np.minimum(low, mean), 0.0), np.maximum(high, mean)


def _quantile(cdf: np.ndarray, q: float) -> float:
    """The age at which the cumulative probability reaches ``q``, treating each year as uniform."""
    index = int(np.searchsorted(cdf, q))
    index = min(index, len(cdf) - 1)
    before = cdf[index - 1] if index > 0 else 0.0
    mass = cdf[index] - before
    fraction = (q - before) / mass if mass > 0 else 0.5
    return float(index - 0.5 + np.clip(fraction, 0.0, 1.0))
