"""Train the age-and-gender model on a labelled face dataset (UTKFace layout).

    python -m ml.train --data ../shared/data/utkface --out var/runs/base --export ml/weights

Faces go through the same detection and alignment as in serving (cached under
``--cache``). The learning rate follows a cosine over ``--epochs`` or over
``--time-budget-min``, whichever runs out first, and training stops there; an
interrupted run started again with the same ``--out`` resumes where it stopped.
The better on ``val`` (age MAE) of the best epoch and the weight average is kept, its
80% interval is calibrated on ``val``, and ``--export`` writes weights and
``model.json`` for the inference facade.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("ml.train")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ml.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="folder with labels.csv and images/")
    parser.add_argument("--labels", type=Path, help="labels CSV (default DATA/labels.csv)")
    parser.add_argument("--out", type=Path, required=True, help="run folder: checkpoints, logs, history")
    parser.add_argument("--cache", type=Path, default=Path("var/cache"), help="aligned-face cache folder")
    parser.add_argument("--export", type=Path, help="write the final weights and model.json here")
    parser.add_argument("--init-from", type=Path, help="weights folder to fine-tune from (e.g. ml/weights)")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--time-budget-min", type=float, default=0, help="fit the schedule in N minutes (0: no limit)")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N training images (smoke runs)")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        handlers=[logging.StreamHandler(), logging.FileHandler(args.out / "train.log")],
    )
    import keras

    from ml.dataset import load_face_dataset, read_labels
    from ml.detection import FaceDetector
    from ml.training import CosineSchedule, TqdmProgress, build_datasets, calibrate_temperature, compile_model

    keras.utils.set_random_seed(args.seed)
    rows = read_labels(args.labels or args.data / "labels.csv")
    if not any(row.split for row in rows):
        raise SystemExit("the labels CSV needs a split column with train and val rows")
    dataset = load_face_dataset(args.data / "images", rows, args.image_size, args.cache, FaceDetector)
    split_of = {row.filename: row.split for row in rows}
    splits = np.array([split_of[name] for name in dataset.filenames])
    train_idx, val_idx = np.flatnonzero(splits == "train"), np.flatnonzero(splits == "val")
    if args.limit:
        train_idx, val_idx = train_idx[: args.limit], val_idx[: max(8, args.limit // 4)]
    log.info(
        "%d train / %d val faces (%d framed by the fallback)", len(train_idx), len(val_idx), (~dataset.detected).sum()
    )

    train_ds, val_ds, steps = build_datasets(dataset, train_idx, val_idx, args.batch_size, args.seed)
    model = compile_model(args.image_size, args.learning_rate, args.init_from)

    best_path = args.out / "best.keras"
    callbacks = [
        keras.callbacks.BackupAndRestore(args.out / "backup"),
        keras.callbacks.ModelCheckpoint(best_path, monitor="val_age_logits_age_mae", mode="min", save_best_only=True),
        keras.callbacks.CSVLogger(args.out / "history.csv", append=True),
        TqdmProgress(steps),
        CosineSchedule(args.learning_rate, steps * args.epochs, args.time_budget_min * 60, args.out / "schedule.json"),
    ]
    started = time.time()
    model.fit(train_ds, validation_data=val_ds, epochs=args.epochs, callbacks=callbacks, verbose=0)
    log.info("training took %.1f min", (time.time() - started) / 60)

    # fit() ends by swapping in the weight averages (EMA); the checkpoint holds the raw
    # weights of the best epoch. Keep whichever does better on val.
    candidates = {"weight_average": model, "best_epoch": keras.models.load_model(best_path, compile=False)}
    scored = {name: calibrate_temperature(candidate, dataset, val_idx) for name, candidate in candidates.items()}
    chosen = min(scored, key=lambda name: scored[name][1]["age_mae"])
    best, (temperature, val_metrics) = candidates[chosen], scored[chosen]
    log.info("kept the %s weights (val age MAE %s)", chosen, {n: round(s[1]["age_mae"], 3) for n, s in scored.items()})
    log.info("val: %s", json.dumps(val_metrics))
    summary = {"val": val_metrics, "kept": chosen, "age_temperature": temperature, "args": _jsonable(vars(args))}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if args.export:
        from ml.inference import write_model

        info = write_model(
            best,
            args.export,
            args.image_size,
            temperature,
            extra={"trained_on": str(args.data), "seed": args.seed, "epochs": args.epochs, "val": val_metrics},
        )
        log.info("exported %s to %s", info.version, args.export)
    return summary


def _jsonable(values: dict) -> dict:
    return {key: str(value) if isinstance(value, Path) else value for key, value in values.items()}


if __name__ == "__main__":
    main()
