"""The product's retraining loop, without Django: fine-tune a served model on the faces reviewers judged,
with a replay sample of the data it was trained on, and measure two models on the same photos.

``apps.predictions`` runs both in one Celery task (``manage.py train_from_reviews``); this module is
the loop's public surface in ml/, as ``ml.inference`` is serving's.

- :func:`fine_tune` starts from a weights folder (``compile_model(init_from=...)``), trains on the
  reviewed faces' train split mixed with a fixed random sample of each shipped set's train split (the
  replay: without it the model would drift to the few hundred faces it is shown, and forget), keeps
  the epoch that scores best on the reviewed faces' and the replay sets' ``val`` rows, calibrates its
  interval there and exports it.
- :func:`compare` runs the full serving pipeline of several models on the same photos (detection once,
  so every model is scored on the very same faces) and returns ``ml.evaluate_all``'s row per set.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from ml.dataset import FaceDataset, LabelledImage, load_face_dataset, read_labels

log = logging.getLogger("ml.retraining")

REVIEWED = "reviewed"  # the name of the reviewed faces' set, in the mix and in the metrics
WEIGHTS_SUBDIR = "weights"

Progress = Callable[[float, str], None]  # (fraction done, what is happening)


@dataclass(frozen=True)
class EvaluationSet:
    """Photos to score a model on: rows of one split of a labels CSV, ``limit`` of them spread over it (0: all)."""

    name: str
    labels: Path
    images: Path
    split: str = "test"
    limit: int = 0


def replay_sample(labels: Path, split: str, size: int, seed: int) -> list[LabelledImage]:
    """``size`` rows of ``split`` drawn at random, in file order. The same arguments draw the same rows,
    so their detections stay in the crop cache from one run to the next."""
    rows = read_labels(labels, split=split)
    if size >= len(rows):
        return rows
    chosen = np.sort(np.random.default_rng(seed).choice(len(rows), size, replace=False))
    return [rows[i] for i in chosen]


def fine_tune(
    *,
    reviewed: Path,
    replay: list[Path],
    replay_size: int,
    init_from: Path,
    out: Path,
    cache: Path,
    epochs: int = 5,
    epoch_size: int = 2048,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    reviewed_share: float = 0.5,
    train_trunk: bool = False,
    seed: int = 42,
    progress: Progress | None = None,
) -> dict:
    """Fine-tune the model in ``init_from`` and export it to ``out/weights``.

    ``reviewed``: a folder as ``export_reviewed`` writes it; its train rows train, its val rows choose and
    calibrate, its test rows are never read. ``replay``: data set folders (labels.csv with a split
    column, images/); ``replay_size`` faces of their train splits in all, shared out as in the shipped
    mix (``ml.train.DEFAULT_SHARES``), and an eighth as many of their val rows. Every batch is
    ``reviewed_share`` reviewed faces. Only the heads learn unless ``train_trunk`` (``compile_model``):
    trained whole on 40 faces labelled 10 years older, the network learnt them by heart (their error
    down 2 to 3 years, held-out faces' under 1, UTKFace's test error up 1 to 6); its heads alone took
    1.5 to 5 years off the held-out faces' error, UTKFace's moving by under 2. Replay crops are cached in
    ``cache``; the reviewed faces' under ``out`` only (people's photos: they go with the run's folder).

    Returns the exported version and what went into it (``training_data``), with its val figures.
    """
    from ml.detection import FaceDetector
    from ml.inference import ModelInfo, write_model
    from ml.sampling import MixedSampler, sampling_weights, strata
    from ml.train import DEFAULT_SHARES, OTHER_SET_SHARE
    from ml.training import CosineSchedule, SetValidation, calibrate_temperature, compile_model, training_batches

    report = progress or (lambda fraction, message: None)
    base = ModelInfo.load(init_from)
    size = base.image_size
    keras.utils.set_random_seed(seed)

    reviewed_rows = [row for row in read_labels(reviewed / "labels.csv") if row.split in ("train", "val")]
    if not any(row.split == "train" for row in reviewed_rows):
        raise ValueError(f"{reviewed}: no reviewed face is in the train split")
    report(0.0, f"aligning {len(reviewed_rows)} reviewed faces")
    parts = [load_face_dataset(reviewed / "images", reviewed_rows, size, out / "cache", FaceDetector, REVIEWED)]
    replay_shares = {folder.name: DEFAULT_SHARES.get(folder.name, OTHER_SET_SHARE) for folder in replay}
    total_share = sum(replay_shares.values())
    for number, folder in enumerate(replay):
        count = round(replay_size * replay_shares[folder.name] / total_share)
        if count == 0:
            continue
        rows = replay_sample(folder / "labels.csv", "train", count, seed)
        rows += replay_sample(folder / "labels.csv", "val", max(8, count // 8), seed)
        report(0.1 * (number + 1) / len(replay), f"aligning {len(rows)} replay faces of {folder.name}")
        parts.append(load_face_dataset(folder / "images", rows, size, cache, FaceDetector, folder.name))
    dataset = FaceDataset.concatenate(parts)
    train_idx = np.flatnonzero(dataset.splits == "train")
    val_idx = np.flatnonzero(dataset.splits == "val")
    if not len(val_idx):
        raise ValueError("no val rows to choose and calibrate the model on: give a replay set, or review more faces")

    in_mix = sorted(str(name) for name in np.unique(dataset.sources[train_idx]))
    replay_total = sum(replay_shares[name] for name in in_mix if name != REVIEWED) or 1.0
    shares = {
        name: reviewed_share if name == REVIEWED else (1 - reviewed_share) * replay_shares[name] / replay_total
        for name in in_mix
    }
    keys = strata(dataset.age_min[train_idx], dataset.age_max[train_idx], dataset.genders[train_idx],
                  dataset.races[train_idx])  # fmt: skip
    sampler = MixedSampler(train_idx, sampling_weights(dataset.sources[train_idx], keys, shares), seed)
    counts = {
        str(name): {
            split: int(np.sum((dataset.sources == name) & (dataset.splits == split))) for split in ("train", "val")
        }
        for name in np.unique(dataset.sources)
    }
    log.info("fine-tuning %s on %s, shares %s", base.version, counts, {k: round(v, 3) for k, v in shares.items()})

    steps = max(1, epoch_size // batch_size)
    model = compile_model(size, learning_rate, init_from, train_trunk)
    best = KeepBest(epochs, report)
    report(0.1, f"epoch 1 of {epochs}")
    model.fit(
        training_batches(dataset, sampler, batch_size, seed, 0),
        steps_per_epoch=steps,
        epochs=epochs,
        callbacks=[CosineSchedule(learning_rate, steps * epochs, 0), SetValidation(dataset, val_idx), best],
        verbose=0,
    )
    report(0.9, f"calibrating epoch {best.epoch + 1}, the best on the val rows")
    model.set_weights(best.weights)
    temperature, val_metrics = calibrate_temperature(model, dataset, val_idx)

    training_data = {
        "fine_tuned_from": base.version,
        "faces": counts,
        "replay_size": replay_size,
        "replay_seed": seed,
        "shares": shares,
        "epochs": epochs,
        "kept_epoch": best.epoch + 1,
        "steps_per_epoch": steps,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "train_trunk": train_trunk,
    }
    info = write_model(model, out / WEIGHTS_SUBDIR, size, temperature,
                       extra={"trained_on": sorted(counts), **training_data, "val": val_metrics})  # fmt: skip
    log.info("exported %s to %s", info.version, out / WEIGHTS_SUBDIR)
    return {"version": info.version, "weights": out / WEIGHTS_SUBDIR, "training_data": training_data,
            "age_temperature": temperature, "val": val_metrics}  # fmt: skip


class KeepBest(keras.callbacks.Callback):
    """Keeps the weights of the epoch with the lowest val score (``SetValidation`` puts it in the epoch's logs,
    so it comes first in the callbacks): a short fine-tune on few faces can overshoot in its last epochs.

    Not the optimizer's weight average, as ``ml.train`` compares: under ``fit`` with Keras 3.15 on
    TensorFlow that average is never updated, and equals the last weights.
    """

    def __init__(self, epochs: int, report: Progress):
        super().__init__()
        self.epochs, self.report = epochs, report
        self.score, self.weights, self.epoch = float("inf"), None, -1

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        shown = {k: round(float(v), 3) for k, v in logs.items() if k in ("loss", "val_score") or k.endswith("_error")}
        log.info("epoch %d/%d: %s", epoch + 1, self.epochs, shown)
        if logs["val_score"] < self.score:
            self.score, self.weights, self.epoch = logs["val_score"], self.model.get_weights(), epoch
        self.report(0.1 + 0.8 * (epoch + 1) / self.epochs, f"epoch {epoch + 1} of {self.epochs} done")


def compare(models: dict[str, Path], sets: list[EvaluationSet], batch_size: int = 32,
            progress: Progress | None = None) -> dict[str, dict[str, dict]]:  # fmt: skip
    """Each model (by name: its weights folder) on each set, through the whole serving pipeline on the same
    faces: ``{model name: {set name: ml.evaluate_all.summary_row}}``. A set without rows is left out."""
    from ml.evaluate import compute_metrics, run_pipelines
    from ml.evaluate_all import spread, summary_row
    from ml.inference import FacePipeline

    report = progress or (lambda fraction, message: None)
    names = list(models)
    first = FacePipeline(models[names[0]], batch_size=batch_size)
    pipelines = [first] + [first.with_weights(models[name]) for name in names[1:]]
    results: dict[str, dict[str, dict]] = {name: {} for name in names}
    for number, chosen in enumerate(sets):
        rows = spread(read_labels(chosen.labels, split=chosen.split), chosen.limit)
        if not rows:
            log.info("%s: no rows in split %s, left out", chosen.name, chosen.split)
            continue
        report(number / len(sets), f"evaluating on {chosen.name} ({len(rows)} photos)")
        for name, pipeline, outputs in zip(
            names, pipelines, run_pipelines(pipelines, rows, chosen.images, batch_size), strict=True
        ):
            metrics, _ = compute_metrics(rows, outputs, pipeline.info.age_temperature, pipeline.info.interval_level, 0)
            results[name][chosen.name] = summary_row(chosen.name, metrics)
            log.info("%s on %s: %s", pipeline.model_version, chosen.name, results[name][chosen.name])
    return results
