"""The dependency audit: a known vulnerable pin is reported, offline too, and an audit that checked nothing fails."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest
from packaging.version import Version

from mairror.settings import BASE_DIR

AUDIT = BASE_DIR / "security" / "audit.py"
PINNED = ["--no-deps", "--disable-pip"]  # no resolver: the audit of a requirements file stays offline


@pytest.fixture(scope="module")
def audit():
    spec = importlib.util.spec_from_file_location("security_audit", AUDIT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_audit(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(AUDIT), *args],
        cwd=BASE_DIR,
        env={**os.environ, "AUDIT_OFFLINE": "1", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def requirements(tmp_path, *pins: str) -> str:
    path = tmp_path / "requirements.txt"
    path.write_text("".join(f"{pin}\n" for pin in pins))
    return str(path)


@pytest.mark.parametrize(
    ("version", "affected"),
    [("4.2.0", True), ("4.2.19", True), ("4.2.20", False), ("5.0.12", True), ("5.1.7", False), ("5.2", False)],
)
def test_ranges_are_read_as_osv_defines_them(audit, version, affected):
    vuln = {
        "affected": [
            {
                "package": {"name": "Django", "ecosystem": "PyPI"},
                "ranges": [
                    {
                        "type": "ECOSYSTEM",
                        "events": [
                            {"introduced": "5.1"},
                            {"fixed": "5.1.7"},
                            {"introduced": "5.0"},
                            {"last_affected": "5.0.12"},
                            {"introduced": "4.2"},
                            {"fixed": "4.2.20"},
                        ],
                    }
                ],
            }
        ]
    }

    assert audit.affects(vuln, "django", Version(version)) is affected
    assert audit.affects(vuln, "flask", Version(version)) is False


def test_an_open_range_affects_every_later_version(audit):
    vuln = {
        "affected": [
            {
                "package": {"name": "x", "ecosystem": "PyPI"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "2.0"}]}],
            }
        ]
    }

    assert [audit.affects(vuln, "x", Version(v)) for v in ("1.9", "2.0", "99")] == [False, True, True]


def test_a_known_vulnerable_pin_is_reported_offline(tmp_path):
    result = run_audit("-r", requirements(tmp_path, "django==4.2.0"), *PINNED)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "PYSEC-2025-13" in result.stdout and "4.2.20" in result.stdout
    assert "OFFLINE" in result.stderr


def test_the_snapshot_holds_well_formed_records_with_provenance(audit):
    snapshot = json.loads(audit.SNAPSHOT.read_text())
    ids = [vuln["id"] for vuln in snapshot["vulns"]]
    provenance = {entry["id"]: entry for entry in snapshot["provenance"]}

    assert len(ids) == len(set(ids))
    assert set(provenance) <= set(ids)
    assert len(provenance) == len(ids) - 6  # the first six records predate the per-record list
    assert all(
        entry["repository"] and entry["path"].endswith(".yaml") and entry["commit"] for entry in provenance.values()
    )
    for vuln in snapshot["vulns"]:
        assert "withdrawn" not in vuln, vuln["id"]
        assert vuln.get("summary") or vuln.get("details"), vuln["id"]
        for affected in vuln["affected"]:
            assert affected["package"]["ecosystem"] == "PyPI"
            ranges = [r for r in affected["ranges"] if r["type"] == "ECOSYSTEM"]
            assert ranges, vuln["id"]
            for event in (event for r in ranges for event in r["events"]):
                [(kind, version)] = event.items()
                assert kind in {"introduced", "fixed", "last_affected"}, vuln["id"]
                Version(version)  # the local endpoint compares them: each must parse


def test_old_pins_of_other_packages_are_reported_offline(tmp_path):
    pins = ["urllib3==1.26.4", "jinja2==2.10", "keras==3.13.0", "setuptools==65.5.0", "pillow==12.2.0"]
    result = run_audit("-r", requirements(tmp_path, *pins), *PINNED)

    assert result.returncode == 1, result.stdout + result.stderr
    for vuln_id in ("PYSEC-2021-108", "PYSEC-2019-217", "PYSEC-2026-2546", "PYSEC-2022-43012", "PYSEC-2026-3493"):
        assert vuln_id in result.stdout
    assert "5 packages queried; 5 have advisories in the snapshot" in result.stderr


def test_an_offline_pass_says_what_it_did_not_check(tmp_path):
    result = run_audit("-r", requirements(tmp_path, "django==5.2.19", "six==1.17.0"), *PINNED)

    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        "2 packages queried; 1 have advisories in the snapshot (django), the other 1 were NOT checked" in result.stderr
    )
    assert "this is not a complete audit" in result.stderr


def test_an_audit_that_checked_nothing_fails(tmp_path):
    result = run_audit("-r", requirements(tmp_path), *PINNED)

    assert result.returncode == 2
    assert "nothing was checked" in result.stderr


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"AUDIT_SNAPSHOT_MAX_AGE_DAYS": "-1"}, "older than -1 days"),
        ({"AUDIT_REQUIRE_ONLINE": "1"}, "OSV is unreachable"),
    ],
)
def test_a_stale_snapshot_or_a_required_online_audit_fails_offline(tmp_path, env, reason):
    result = run_audit("-r", requirements(tmp_path, "django==5.2.19"), *PINNED, **env)

    assert result.returncode == 2
    assert reason in result.stderr
