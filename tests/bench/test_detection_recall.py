"""bench/detection_recall.py: arguments, bands, the counts and files of a smoke run over a tiny subset."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ml.dataset import LabelledImage
from tests.bench.support import REPO, load_bench_script

SHARED = REPO.parent / "shared" / "data"


dr = load_bench_script("detection_recall")


def test_defaults_are_the_three_shared_sets_and_both_splits():
    args = dr.parse_args([])
    assert [s.name for s in args.sets] == ["utkface", "korean_family_age", "scut_fbp5500"]
    assert args.sets[0].labels == dr.DEFAULT_DATA / "utkface" / "labels.csv"
    assert args.splits == ["val", "test"]
    args = dr.parse_args(["--set", "mine=/data/x", "--split", "test", "--split", "test", "--limit", "5"])
    assert args.sets == [dr.DataSet("mine", Path("/data/x/labels.csv"), Path("/data/x/images"))]
    assert args.splits == ["test"] and args.limit == 5
    with pytest.raises(SystemExit):
        dr.parse_args(["--set", "no-equals-sign"])


@pytest.mark.parametrize(
    "age_min, age_max, band",
    [
        (0, 0, "0-6"),
        (6, 6, "0-6"),
        (7, 7, "7-12"),
        (30, 30, "20-30"),
        (80, 80, "67-80"),
        (81, 81, "81+"),
        (116, 116, "81+"),
        (46, 55, "46-55"),
        (15, 60, "15-60"),
    ],
)
def test_bands_follow_the_korean_groups_and_ranges_stay_themselves(age_min, age_max, band):
    assert dr.band_of(LabelledImage("x.jpg", age_min, age_max, 0, None, "test")) == band


def test_spread_keeps_limit_rows_over_the_whole_list():
    assert dr.spread(list(range(10)), 0) == list(range(10))
    assert dr.spread(list(range(10)), 20) == list(range(10))
    assert dr.spread(list(range(100)), 4) == [0, 25, 50, 75]


def test_summary_counts_before_and_after_the_retry():
    def outcome(name, age, gender, faces, retry=None, readable=True):
        return dr.Outcome(LabelledImage(name, age, age, gender, None, "val"), readable, faces, retry, None)

    outcomes = [
        outcome("a", 1, 0, 1),
        outcome("b", 2, 1, 1, retry="lowered"),
        outcome("c", 3, 1, 0),
        outcome("d", 40, 0, 2),
        outcome("e", 40, 0, 0, readable=False),
    ]
    result = dr.summarize(outcomes, seconds=1.0)
    assert (result["photos"], result["misses_before"], result["misses_after"], result["unreadable"]) == (4, 2, 1, 1)
    assert result["by_band"] == {
        "0-6": {"photos": 3, "misses_before": 2, "misses_after": 1},
        "31-45": {"photos": 1, "misses_before": 0, "misses_after": 0},
    }
    assert result["by_gender"]["female"] == {"photos": 2, "misses_before": 2, "misses_after": 1}
    assert result["recovered_by"] == {"lowered": 1}
    assert result["missed_before"] == ["b", "c"] and result["missed_after"] == ["c"]


def test_smoke_run_writes_the_files_and_the_counts_add_up(tmp_path):
    if not (SHARED / "utkface" / "labels.csv").exists():
        pytest.skip(f"the shared data is not at {SHARED}")
    sets = [f"{name}={SHARED / name}" for name in ("utkface", "korean_family_age") if (SHARED / name).exists()]
    # Started as CI would: a plain subprocess, no environment of ours.
    command = [sys.executable, str(REPO / "bench" / "detection_recall.py"), "--limit", "6", "--out", str(tmp_path)]
    for value in sets:
        command += ["--set", value]
    subprocess.run(command, check=True, cwd=tmp_path, capture_output=True, timeout=600)

    report = json.loads((tmp_path / "recall.json").read_text())
    assert set(report["results"]) == {f"{s.split('=')[0]}/{split}" for s in sets for split in ("val", "test")}
    with open(tmp_path / "missed.csv", newline="") as handle:
        missed_rows = list(csv.DictReader(handle))
    for key, result in report["results"].items():
        assert result["photos"] + result["unreadable"] == 6
        assert 0 <= result["misses_after"] <= result["misses_before"] <= result["photos"]
        for groups in (result["by_band"], result["by_gender"]):
            for field in ("photos", "misses_before", "misses_after"):
                assert sum(g[field] for g in groups.values()) == result[field]
        assert len(result["missed_before"]) == result["misses_before"]
        assert set(result["missed_after"]) <= set(result["missed_before"])
        name, split = key.split("/")
        assert sorted(r["filename"] for r in missed_rows if (r["set"], r["split"]) == (name, split)) == sorted(
            result["missed_before"]
        )
    text = (tmp_path / "recall.md").read_text()
    assert text.startswith("# Detection recall") and all(f"## {key}" in text for key in report["results"])
