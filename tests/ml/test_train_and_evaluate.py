"""A smoke training run and evaluation runs, end to end through the real CLIs."""

import csv
import io
import json
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np
from PIL import Image
from skimage import data

from ml import evaluate, evaluate_all, train
from ml.inference import FacePipeline
from ml.training import read_checkpoint_state

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
    assert 0 <= summary["val"]["interval_coverage"]["utkface"] <= 1
    assert (tmp_path / "run" / "history.csv").exists() and (tmp_path / "run" / "train.log").exists()
    assert any((tmp_path / "cache").rglob("crops-*-32.npz"))

    with zipfile.ZipFile(tmp_path / "weights" / "age_gender.keras") as archive:
        weights = h5py.File(io.BytesIO(archive.read("model.weights.h5")))
        assert "layers" in weights and "optimizer" not in weights, "served weights carry no optimizer state"

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


def test_training_on_two_sets_with_exact_ages_and_age_groups(utkface_dir, korean_dir, write_subset, tmp_path):
    utk = tmp_path / "utkface"
    korean = tmp_path / "korean_family_age"
    for folder, source in ((utk, utkface_dir), (korean, korean_dir)):
        folder.mkdir()
        (folder / "images").symlink_to(source / "images")
        write_subset(folder / "labels.csv", {"train": 32, "val": 16}, source)
    summary = train.main(
        ["--data", str(utk), "--data", str(korean), "--out", str(tmp_path / "run"), "--cache", str(tmp_path / "cache"),
         "--image-size", "32", "--epochs", "2", "--epoch-size", "64", "--batch-size", "16",
         "--mix", "utkface=0.5,korean_family_age=0.5"]
    )  # fmt: skip
    val = summary["val"]
    assert val["n"] == 32
    assert {"val_utkface_age_error", "val_korean_family_age_age_error", "val_korean_family_age_gender_accuracy"} <= set(
        val
    )
    assert set(val["interval_coverage"]) == {"utkface", "korean_family_age"}
    history = list(csv.DictReader((tmp_path / "run" / "history.csv").open()))
    assert [row["epoch"] for row in history] == ["0", "1"] and "val_score" in history[0]


def test_evaluation_on_age_groups_reports_the_share_inside_and_the_distance(korean_dir, write_subset, tmp_path):
    labels = write_subset(tmp_path / "labels.csv", {"test": 24}, korean_dir)
    metrics = evaluate.main(["--labels", str(labels), "--images", str(korean_dir / "images"), "--split", "test",
                             "--out", str(tmp_path / "out")])  # fmt: skip
    assert metrics["n"] == 24 and metrics["age_mae"] is None
    assert 0 <= metrics["age_in_range"] <= 1 and metrics["age_range_distance"] >= 0
    groups = metrics["by_age_group"]
    assert sum(g["n"] for g in groups.values()) == metrics["evaluated"]
    assert all(g["distance"] == 0 for g in groups.values() if g["in_range"] == 1)
    assert 0 <= metrics["interval_coverage"] <= 1
    assert sum(g["n"] for g in metrics["detection_misses_by_group"].values()) == 24
    predictions = list(csv.DictReader((tmp_path / "out" / "predictions.csv").open()))
    for row in predictions:  # the share inside is what the predictions say
        assert row["age"] == "" and int(row["age_min"]) <= int(row["age_max"])
    inside = np.mean([int(r["age_min"]) <= float(r["age_pred"]) <= int(r["age_max"]) for r in predictions])
    assert inside == metrics["age_in_range"]
    assert "By age group" in (tmp_path / "out" / "report.md").read_text()
    assert (tmp_path / "out" / "age_by_group.png").stat().st_size > 1000


def test_evaluate_all_writes_one_table_for_every_set(utkface_dir, korean_dir, tmp_path):
    summary = evaluate_all.main(["--data", str(utkface_dir), "--data", str(korean_dir), "--limit", "8",
                                 "--out", str(tmp_path)])  # fmt: skip
    assert [row["set"] for row in summary["sets"]] == ["utkface", "korean_family_age"]
    utk, korean = summary["sets"]
    assert utk["age_mae"] is not None and utk["age_in_range"] is None
    assert korean["age_mae"] is None and korean["age_in_range"] is not None
    table = (tmp_path / "summary.md").read_text()
    assert summary["model_version"] in table and "korean_family_age" in table
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert (tmp_path / "korean_family_age-test" / "report.md").exists()


def test_an_interrupted_training_run_resumes_where_it_stopped(utkface_dir, write_subset, tmp_path):
    """Kill a run after its first epoch; started again, it does only the remaining epochs."""
    labels = write_subset(tmp_path / "labels.csv", {"train": 32, "val": 8})
    checkpoint = tmp_path / "elsewhere" / "run.keras"
    command = [
        sys.executable, "-m", "ml.train", "--data", str(utkface_dir), "--labels", str(labels),
        "--out", str(tmp_path / "run"), "--cache", str(tmp_path / "cache"), "--image-size", "32",
        "--epochs", "3", "--batch-size", "8", "--checkpoint", str(checkpoint),
    ]  # fmt: skip
    run = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while run.poll() is None and not checkpoint.exists():
        assert time.monotonic() < deadline, "the first epoch never finished"
        time.sleep(0.1)
    run.kill()
    run.wait()
    epochs_before = [row["epoch"] for row in read_checkpoint_state(checkpoint)["history"]]
    assert epochs_before and 2 not in epochs_before  # killed before the end

    shutil.rmtree(tmp_path / "run")  # another machine: only the checkpoint file came along
    subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    epochs = [row["epoch"] for row in csv.DictReader((tmp_path / "run" / "history.csv").open())]
    assert epochs == [str(e) for e in range(3)]  # each epoch once: nothing redone, nothing skipped
    assert (tmp_path / "run" / "summary.json").exists()
