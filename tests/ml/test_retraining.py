"""The retraining loop's ml half on real UTKFace faces: a tiny fine-tune, and two models scored on the same faces."""

import csv
import json
import shutil

import keras
import numpy as np
import pytest

from ml import evaluate_all, retraining
from ml.dataset import read_labels
from ml.inference import DEFAULT_WEIGHTS_DIR, MODEL_FILE, FacePipeline, ModelInfo, write_model
from ml.model import build_model

SIZE = 32


@pytest.fixture(scope="module")
def small_weights(tmp_path_factory):
    """Untrained weights at a small crop size: what matters here is what the loop does with them."""
    keras.utils.set_random_seed(3)
    directory = tmp_path_factory.mktemp("small")
    write_model(build_model(SIZE), directory, SIZE, 1.0, {})
    return directory


@pytest.fixture
def reviewed(utkface_dir, tmp_path):
    """A folder as export_reviewed writes it: 12 faces in train, 4 in val, 4 in test, ages 10 years older."""
    folder = tmp_path / "reviewed"
    (folder / "images").mkdir(parents=True)
    rows = read_labels(utkface_dir / "labels.csv", split="val")[::97][:20]
    with open(folder / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "age", "gender", "race", "split"])
        for number, row in enumerate(rows):
            shutil.copy(utkface_dir / "images" / row.filename, folder / "images" / row.filename)
            split = "train" if number < 12 else "val" if number < 16 else "test"
            writer.writerow([row.filename, row.age_min + 10, row.gender, "", split])
    return folder


def test_a_fine_tune_trains_the_heads_on_reviewed_and_replayed_faces(utkface_dir, reviewed, small_weights, tmp_path):
    reports = []

    summary = retraining.fine_tune(
        reviewed=reviewed,
        replay=[utkface_dir],
        replay_size=16,
        init_from=small_weights,
        out=tmp_path / "run",
        cache=tmp_path / "cache",
        epochs=2,
        epoch_size=64,
        batch_size=16,
        progress=lambda fraction, stage: reports.append((fraction, stage)),
    )

    card = json.loads((tmp_path / "run" / "weights" / "model.json").read_text())
    assert summary["version"] == card["version"] == FacePipeline(summary["weights"]).model_version
    assert card["fine_tuned_from"] == ModelInfo.load(small_weights).version and card["image_size"] == SIZE
    data = summary["training_data"]
    # Test rows are never read; the replay is 16 train faces and an eighth as many val rows, at least 8.
    assert data["faces"] == {"reviewed": {"train": 12, "val": 4}, "utkface": {"train": 16, "val": 8}}
    assert data["shares"] == {"reviewed": 0.5, "utkface": 0.5} and 1 <= data["kept_epoch"] <= 2
    assert summary["val"]["n"] == 12 and "val_reviewed_age_error" in summary["val"]
    fractions = [fraction for fraction, _ in reports]
    assert (
        fractions == sorted(fractions) and fractions[-1] == 0.9 and "epoch 2 of 2 done" in dict(map(reversed, reports))
    )

    before = keras.models.load_model(small_weights / MODEL_FILE, compile=False)
    after = keras.models.load_model(summary["weights"] / MODEL_FILE, compile=False)
    for layer in ("stem_conv", "stage3_bn2"):  # the trunk as it was, batch norm statistics included
        for old, new in zip(before.get_layer(layer).get_weights(), after.get_layer(layer).get_weights(), strict=True):
            np.testing.assert_array_equal(old, new)
    assert not np.array_equal(
        before.get_layer("age_logits").get_weights()[0], after.get_layer("age_logits").get_weights()[0]
    )
    # The reviewed faces' crops stay in the run's folder; only the replay's go to the shared cache.
    assert any((tmp_path / "run" / "cache").rglob("crops-*.npz"))
    assert len(list((tmp_path / "cache").rglob("crops-*.npz"))) == 1


def test_the_replay_sample_is_the_same_rows_every_time(utkface_dir):
    first = retraining.replay_sample(utkface_dir / "labels.csv", "train", 50, seed=42)
    assert first == retraining.replay_sample(utkface_dir / "labels.csv", "train", 50, seed=42)
    assert first != retraining.replay_sample(utkface_dir / "labels.csv", "train", 50, seed=43)
    assert len({row.filename for row in first}) == 50 and {row.split for row in first} == {"train"}


def test_models_of_two_crop_sizes_are_scored_on_the_same_faces(utkface_dir, small_weights, tmp_path):
    labels, images = utkface_dir / "labels.csv", utkface_dir / "images"
    chosen = [
        retraining.EvaluationSet("utkface", labels, images, "test", 12),
        retraining.EvaluationSet("empty", labels, images, "none"),
    ]

    results = retraining.compare({"shipped": DEFAULT_WEIGHTS_DIR, "small": small_weights}, chosen)

    assert set(results) == {"shipped", "small"} and set(results["shipped"]) == {"utkface"}  # no rows: left out
    shipped, small = results["shipped"]["utkface"], results["small"]["utkface"]
    assert (shipped["images"], shipped["detection_misses"]) == (small["images"], small["detection_misses"]) == (12, 0)
    assert shipped["age_mae"] != small["age_mae"]
    # The shipped model's figures are those of its own evaluation, alone on the same rows.
    alone = evaluate_all.main(["--data", str(utkface_dir), "--limit", "12", "--out", str(tmp_path / "alone")])
    assert shipped == pytest.approx(alone["sets"][0])
