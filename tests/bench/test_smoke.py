"""Every benchmark runs once in its smoke mode, as a user would start it, so none can rot silently.

Tiny counts and no timing asserts: each test checks that the script starts on its own (no
environment to set first), finishes and writes results that say what was measured.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ml.inference import DEFAULT_WEIGHTS_DIR, ModelInfo

REPO = Path(__file__).resolve().parents[2]
UTKFACE = REPO.parent / "shared" / "data" / "utkface"


def run_bench(script: str, *args: str, timeout: int = 600) -> None:
    completed = subprocess.run(
        [sys.executable, f"bench/{script}", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
    assert completed.returncode == 0, f"{script} failed:\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}"


def test_model_speed(tmp_path):
    run_bench("model_speed.py", "--smoke", "--out", str(tmp_path))
    result = json.loads((tmp_path / "model_speed.json").read_text())
    assert result["model_version"] == ModelInfo.load(DEFAULT_WEIGHTS_DIR).version
    assert result["input_size"] == ModelInfo.load(DEFAULT_WEIGHTS_DIR).image_size
    assert result["ms_per_face_median"] > 0


def test_detection_speed(tmp_path):
    run_bench("detection_speed.py", "--smoke", "--out", str(tmp_path))
    report = json.loads((tmp_path / "detection_speed.json").read_text())
    assert set(report["speed"]["new"]) >= {"photo_640x640", "photo_1280x720"}
    assert report["recall"]["new"]["astronaut_faces"] == 1
    assert (tmp_path / "detection_speed.md").read_text().startswith("# Face detection + alignment speed")


def test_upload_sanitize(tmp_path):
    run_bench("upload_sanitize.py", "--smoke", "--out", str(tmp_path))
    lines = (tmp_path / "upload_sanitize.txt").read_text().splitlines()
    jpeg = [line for line in lines if line.startswith("12 MP JPEG, EXIF orientation 6 + GPS")]
    assert len(jpeg) == 1 and "-> JPEG 3000 x 4000" in jpeg[0]  # turned upright
    assert sum(line.startswith("PNG encoding of the 12 MP photo") for line in lines) == 3


def test_pipeline_latency_starts_the_stack_as_production_runs_it(tmp_path):
    """DEBUG off with its own secret key (gunicorn refuses the development key) and no rate limit."""
    run_bench("pipeline_latency.py", "--smoke", "--out", str(tmp_path))
    [run] = json.loads((tmp_path / "pipeline_latency.json").read_text())["runs"]
    assert run["worker_processes"] == 1
    assert run["latency_ms"]["n"] == 1 and run["latency_ms"]["faces_found"] == [1]
    assert run["latency_ms"]["breakdown_p50"]["detection_ms"] > 0
    assert run["throughput"]["photos"] == run["throughput"]["done"] == 2
    assert "latency p50" in (tmp_path / "pipeline_latency.md").read_text()


@pytest.mark.skipif(not UTKFACE.exists(), reason=f"{UTKFACE} is absent")
def test_compare_peers(tmp_path):
    """Creates .venv-bench with the pinned peer when it is missing, as a user's first run does."""
    run_bench("compare_peers.py", "--data", str(UTKFACE), "--split", "test", "--limit", "4", "--out", str(tmp_path))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    utkface = metrics["sets"]["utkface"]
    assert utkface["rows"] == 4
    assert [m["evaluated"] for m in utkface["models"]] == [utkface["faces"]] * 2


def test_wait_capacity_holds_open_waits_and_probes_healthz(tmp_path):
    """No Celery worker: every wait stays open to its end and answers 200, still pending."""
    run_bench("wait_capacity.py", "--smoke", "--out", str(tmp_path))
    report = json.loads((tmp_path / "wait_capacity.json").read_text())
    assert report["waits"] == report["open_when_measured"] == 20
    assert report["answers"] == {"200 pending": 20}
    assert report["healthz_ms_with_waits_open"]["n"] == 5
    assert "`/healthz` with the waits open" in (tmp_path / "wait_capacity.md").read_text()


def test_first_photo_waits_for_healthz_to_count_a_fresh_worker_then_sends(tmp_path):
    run_bench("first_photo.py", "--smoke", "--out", str(tmp_path))
    report = json.loads((tmp_path / "first_photo.json").read_text())
    first, at_start = report["ready_first"], report["sent_at_start"]
    assert first["statuses"] == ["done"] and first["faces_found"] == [1] and len(first["latency_ms"]) == 2
    assert len(first["warm_up_s"]) == len(at_start["warm_up_s"]) == 1  # one pool process, warmed once
    assert first["healthz_ml_ready_s"] < first["first_result_from_worker_start_s"]
    assert at_start["status"] == "done" and at_start["faces_found"] == 1
    assert "photo 1 / photo 2" in (tmp_path / "first_photo.md").read_text()
