"""Train the age-and-gender model on one or more labelled face data sets (UTKFace layout).

    python -m ml.train --data ../shared/data/utkface --data ../shared/data/korean_family_age \
        --data ../shared/data/scut_fbp5500 --out var/runs/mix --export ml/weights

Faces go through the same detection and alignment as in serving (cached under ``--cache``).
Labels are exact ages or age ranges (:mod:`ml.dataset`); batches mix the sets in fixed shares
and balance age bands, genders and races inside each (:mod:`ml.sampling`, ``--mix`` and
``--balance``), and every crop is damaged at random as real photos are (:mod:`ml.augment`).
The learning rate follows a cosine over ``--epochs`` or over ``--time-budget-min``, whichever
runs out first. After each epoch the whole run is saved in one file (``--checkpoint``): started
again with the same arguments, an interrupted run resumes from it, on this machine or another.
At the end the weight average (EMA) and the last epoch's weights are compared on the union of
the sets' ``val`` splits, the better is kept, its 80% interval is calibrated on them, and
``--export`` writes weights and ``model.json`` for the inference facade.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("ml.train")

# Each set's share of every batch, whatever its size (README of ml/weights/MODEL_CARD.md says why).
DEFAULT_SHARES = {"utkface": 0.5, "korean_family_age": 0.35, "scut_fbp5500": 0.15}
OTHER_SET_SHARE = 0.25


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ml.train", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        action="append",
        required=True,
        help="folder with labels.csv and images/; repeat for several sets (named by the folder)",
    )
    parser.add_argument("--labels", type=Path, help="labels CSV (default DATA/labels.csv; only with one --data)")
    parser.add_argument("--out", type=Path, required=True, help="run folder: train.log, history.csv, summary.json")
    parser.add_argument("--checkpoint", type=Path, help="the run's one resumable file (default OUT/checkpoint.keras)")
    parser.add_argument("--cache", type=Path, default=Path("var/cache"), help="aligned-face cache folder")
    parser.add_argument("--export", type=Path, help="write the final weights and model.json here")
    parser.add_argument("--init-from", type=Path, help="weights folder to start from (e.g. ml/weights)")
    parser.add_argument("--mix", help="shares per set, e.g. utkface=0.5,korean_family_age=0.35 (default: see code)")
    parser.add_argument("--balance", type=float, default=0.5, help="0: sets' own age/gender/race mix, 1: uniform")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--epoch-size", type=int, default=0, help="faces per epoch (default: the training faces)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--time-budget-min", type=float, default=0, help="fit the schedule in N minutes (0: no limit)")
    parser.add_argument("--limit", type=int, default=0, help="only N training faces per set (smoke runs)")
    args = parser.parse_args(argv)
    if args.labels and len(args.data) > 1:
        parser.error("--labels goes with a single --data")
    return args


def shares_for(names: list[str], mix: str | None) -> dict[str, float]:
    if mix:
        given = {name.strip(): float(share) for name, share in (item.split("=") for item in mix.split(","))}
        return {name: given.get(name, 0.0) for name in names}
    return {name: DEFAULT_SHARES.get(name, OTHER_SET_SHARE) for name in names}


def main(argv=None) -> dict:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    checkpoint = args.checkpoint or args.out / "checkpoint.keras"
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        handlers=[logging.StreamHandler(), logging.FileHandler(args.out / "train.log")],
    )
    import keras

    from ml.dataset import FaceDataset, load_face_dataset, read_labels
    from ml.detection import FaceDetector
    from ml.sampling import MixedSampler, sampling_weights, strata
    from ml.training import (
        RANGE_SPREAD_WEIGHT,
        CosineSchedule,
        ResumableCheckpoint,
        SetValidation,
        TqdmProgress,
        calibrate_temperature,
        compile_model,
        load_checkpoint,
        read_checkpoint_state,
        training_batches,
    )

    keras.utils.set_random_seed(args.seed)
    parts = []
    for folder in args.data:
        rows = read_labels(args.labels or folder / "labels.csv")
        if not any(row.split for row in rows):
            raise SystemExit(f"{folder}: the labels CSV needs a split column with train and val rows")
        parts.append(load_face_dataset(folder / "images", rows, args.image_size, args.cache, FaceDetector, folder.name))
    dataset = FaceDataset.concatenate(parts)
    train_idx, val_idx = [], []
    for name in np.unique(dataset.sources):
        in_set = dataset.sources == name
        train = np.flatnonzero(in_set & (dataset.splits == "train"))
        val = np.flatnonzero(in_set & (dataset.splits == "val"))
        if args.limit:
            train, val = train[: args.limit], val[: max(8, args.limit // 4)]
        train_idx.append(train)
        val_idx.append(val)
    train_idx, val_idx = np.concatenate(train_idx), np.concatenate(val_idx)
    shares = shares_for(sorted(np.unique(dataset.sources)), args.mix)
    keys = strata(dataset.age_min[train_idx], dataset.age_max[train_idx], dataset.genders[train_idx],
                  dataset.races[train_idx])  # fmt: skip
    weights = sampling_weights(dataset.sources[train_idx], keys, shares, args.balance)
    sampler = MixedSampler(train_idx, weights, args.seed)
    for name in shares:
        log.info("%s: %d train / %d val faces, share %.2f, %d framed by the fallback", name,
                 int((dataset.sources[train_idx] == name).sum()), int((dataset.sources[val_idx] == name).sum()),
                 shares[name], int((~dataset.detected[dataset.sources == name]).sum()))  # fmt: skip

    steps = max(1, (args.epoch_size or len(train_idx)) // args.batch_size)
    config = {"data": [str(d) for d in args.data], "shares": shares, "balance": args.balance, "seed": args.seed,
              "image_size": args.image_size, "epochs": args.epochs, "steps_per_epoch": steps,
              "batch_size": args.batch_size, "learning_rate": args.learning_rate,
              "time_budget_min": args.time_budget_min, "range_spread_weight": RANGE_SPREAD_WEIGHT}  # fmt: skip
    state = read_checkpoint_state(checkpoint)
    if state is not None:
        if state["config"] != config:
            raise SystemExit(f"{checkpoint} belongs to a run with other settings: {state['config']}")
        model, _ = load_checkpoint(checkpoint)
        log.info("resuming from %s at epoch %d, step %d", checkpoint, state["epoch"], state["step"])
    else:
        state = {"epoch": 0, "step": 0, "elapsed": 0.0, "finished": False, "history": []}
        model = compile_model(args.image_size, args.learning_rate, args.init_from)

    schedule = CosineSchedule(args.learning_rate, steps * args.epochs, args.time_budget_min * 60,
                              step=state["step"], elapsed=state["elapsed"])  # fmt: skip
    started = time.time()
    if not state["finished"] and state["epoch"] < args.epochs:
        callbacks = [
            schedule,
            SetValidation(dataset, val_idx),
            ResumableCheckpoint(checkpoint, schedule, config, state["history"]),
            TqdmProgress(steps),
        ]
        model.fit(
            training_batches(dataset, sampler, args.batch_size, args.seed, state["step"]),
            steps_per_epoch=steps,
            initial_epoch=state["epoch"],
            epochs=args.epochs,
            callbacks=callbacks,
            verbose=0,
        )
        log.info("training took %.1f min this time", (time.time() - started) / 60)

    # The checkpoint holds the last epoch's own weights and, in the optimizer, their average.
    last, _ = load_checkpoint(checkpoint)
    average, _ = load_checkpoint(checkpoint)
    average.optimizer.finalize_variable_values(average.trainable_weights)
    candidates = {"weight_average": average, "last_epoch": last}
    scored = {name: calibrate_temperature(candidate, dataset, val_idx) for name, candidate in candidates.items()}
    chosen = min(scored, key=lambda name: scored[name][1]["val_score"])
    best, (temperature, val_metrics) = candidates[chosen], scored[chosen]
    log.info("kept the %s weights (val score %s)", chosen, {n: round(s[1]["val_score"], 3) for n, s in scored.items()})
    log.info("val: %s", json.dumps(val_metrics))
    history = read_checkpoint_state(checkpoint)["history"]
    write_history(args.out / "history.csv", history)
    summary = {"val": val_metrics, "kept": chosen, "age_temperature": temperature, "args": _jsonable(vars(args))}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if args.export:
        from ml.inference import write_model

        info = write_model(
            best,
            args.export,
            args.image_size,
            temperature,
            extra={
                "trained_on": [d.name for d in args.data],
                "mix": shares,
                "balance": args.balance,
                "seed": args.seed,
                "epochs": len(history),
                "val": val_metrics,
            },  # fmt: skip
        )
        log.info("exported %s to %s", info.version, args.export)
    return summary


def write_history(path: Path, history: list[dict]) -> None:
    """One row per epoch, from the checkpoint: complete even when the run moved between machines."""
    columns = list(dict.fromkeys(key for row in history for key in row))
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(history)


def _jsonable(values: dict) -> dict:
    def plain(value):
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    return {key: plain(value) for key, value in values.items()}


if __name__ == "__main__":
    main()
