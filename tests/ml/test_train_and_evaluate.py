"""A smoke training run and evaluation runs, end to end through the real CLIs."""

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

from ml import evaluate, train
from ml.inference import FacePipeline

REPO = Path(__file__).resolve().parents[2]


def test_smoke_training_run_exports_a_model_the_facade_can_load(utkface_dir, write_subset, tmp_path):
    labels = write_subset(tmp_path / "labels.csv", {"train": 48, "val": 16})
    summary = train.main(
        [
            "--data", str(utkface_dir), "--labels", str(labels), "--out", str(tmp_path / "run"),
            "--cache", str(tmp_path / "cache"), "--export", str(tmp_path / "weights"),
            "--image-size", "32", "--epochs", "1", "--batch-size", "16",
        ]
    )  # fmt: skip
    assert summary["val"]["n"] == 16
    assert 0 <= summary["val"]["interval_coverage"] <= 1
    assert (tmp_path / "run" / "history.csv").exists() and (tmp_path / "run" / "train.log").exists()
    assert any((tmp_path / "cache").rglob("crops-*-32.npz"))

    pipeline = FacePipeline(tmp_path / "weights")
    assert pipeline.crop_size == 32
    ((age, gender),) = pipeline.estimate(np.zeros((1, 32, 32, 3), np.uint8))
    assert age.low <= age.value <= age.high and gender.label in {"female", "male"}


def test_second_training_run_reuses_the_detection_cache(utkface_dir, write_subset, tmp_path):
    labels = write_subset(tmp_path / "labels.csv", {"train": 16, "val": 8})
    common = ["--data", str(utkface_dir), "--labels", str(labels), "--cache", str(tmp_path / "cache"),
              "--epochs", "1", "--batch-size", "8"]  # fmt: skip
    train.main([*common, "--out", str(tmp_path / "a"), "--image-size", "32"])
    chunks = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("chunk-*.npz")}
    train.main([*common, "--out", str(tmp_path / "b"), "--image-size", "40"])
    assert chunks and chunks == {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("chunk-*.npz")}
    assert any((tmp_path / "cache").rglob("crops-*-40.npz"))


def test_evaluation_on_utkface_rows_writes_metrics_and_report(utkface_dir, write_subset, tmp_path):
    labels = write_subset(tmp_path / "labels.csv", {"test": 24})
    metrics = evaluate.main(
        ["--labels", str(labels), "--images", str(utkface_dir / "images"), "--split", "test", "--out", str(tmp_path)]
    )
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(metrics))
    for key in ("n", "detection_misses", "age_mae", "gender_accuracy", "interval_coverage", "mae_by_band",
                "images_per_second", "by_race", "by_gender"):  # fmt: skip
        assert key in saved
    assert saved["n"] == 24 and saved["detection_misses"] <= 3
    assert saved["age_mae"] < 15  # a working model; the real figures come from the full test split
    assert 0.5 <= saved["gender_accuracy"] <= 1
    report = (tmp_path / "report.md").read_text()
    for plot in ("age_scatter.png", "error_by_band.png", "gender_confusion.png", "interval_calibration.png"):
        assert (tmp_path / plot).stat().st_size > 1000 and plot in report


def test_evaluation_works_on_uncropped_photos_with_only_filename_and_age(tmp_path):
    Image.fromarray(data.astronaut()).save(tmp_path / "astronaut.jpg")
    Image.fromarray(data.coffee()).save(tmp_path / "coffee.jpg")
    with open(tmp_path / "labels.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([["filename", "age"], ["astronaut.jpg", 38], ["coffee.jpg", 30]])
    metrics = evaluate.main(["--labels", str(tmp_path / "labels.csv"), "--images", str(tmp_path), "--out",
                             str(tmp_path / "out")])  # fmt: skip
    assert metrics["n"] == 2 and metrics["detection_misses"] == 1  # a cup of coffee has no face
    assert metrics["gender_accuracy"] is None and "by_race" not in metrics
    assert abs(metrics["age_mae"]) < 25


def test_an_interrupted_training_run_resumes_where_it_stopped(utkface_dir, write_subset, tmp_path):
    """Kill a run after its first epoch; started again, it does only the remaining epochs."""
    labels = write_subset(tmp_path / "labels.csv", {"train": 32, "val": 8})
    command = [
        sys.executable, "-m", "ml.train", "--data", str(utkface_dir), "--labels", str(labels),
        "--out", str(tmp_path / "run"), "--cache", str(tmp_path / "cache"), "--image-size", "32",
        "--epochs", "3", "--batch-size", "8",
    ]  # fmt: skip
    history = tmp_path / "run" / "history.csv"
    run = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while run.poll() is None and not (history.exists() and len(history.read_text().splitlines()) >= 2):
        assert time.monotonic() < deadline, "the first epoch never finished"
        time.sleep(0.2)
    run.kill()
    run.wait()
    epochs_before = [row["epoch"] for row in csv.DictReader(history.open())]
    assert epochs_before and "2" not in epochs_before  # killed before the end

    subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    epochs = [row["epoch"] for row in csv.DictReader(history.open())]
    assert epochs == [str(e) for e in range(3)]  # each epoch once: nothing redone, nothing skipped
    assert (tmp_path / "run" / "summary.json").exists()
