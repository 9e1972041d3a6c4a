import csv
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def utkface_dir() -> Path:
    """The shared UTKFace copy (``../shared/data/utkface`` beside the repo, or $MAIRROR_UTKFACE)."""
    path = Path(os.environ.get("MAIRROR_UTKFACE", REPO.parent / "shared" / "data" / "utkface"))
    if not (path / "labels.csv").exists():
        pytest.skip(f"UTKFace not found at {path}")
    return path


@pytest.fixture(scope="session")
def korean_dir(utkface_dir: Path) -> Path:
    """The shared Korean family set (age groups), beside UTKFace."""
    path = utkface_dir.parent / "korean_family_age"
    if not (path / "labels.csv").exists():
        pytest.skip(f"the Korean family set is not at {path}")
    return path


@pytest.fixture
def write_subset(utkface_dir: Path):
    """Writes a labels CSV with rows of each split, spread over the whole file (every k-th row)."""
    return lambda out, per_split, source=utkface_dir: _write_subset(source, out, per_split)


def _write_subset(data_dir: Path, out: Path, per_split: dict[str, int]) -> Path:
    with open(data_dir / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    chosen = []
    for split, count in per_split.items():
        members = [row for row in rows if row["split"] == split]
        chosen += members[:: max(1, len(members) // count)][:count]
    with open(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(chosen)
    return out
