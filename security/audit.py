"""Known vulnerabilities in the installed dependencies: pip-audit against OSV.

    python security/audit.py [pip-audit arguments, e.g. -r requirements.txt --no-deps --disable-pip]

Online (api.osv.dev answers) this is a complete audit. Offline (this sandbox, air-gapped CI) pip-audit is
pointed at a local OSV-compatible endpoint serving ``osv-snapshot.json``, a small sample of advisories, and
the report says which packages that could and could not check. Exit codes: 0 nothing found, 1 pip-audit
found a vulnerability, 2 nothing could be checked (or AUDIT_REQUIRE_ONLINE=1 and OSV is unreachable,
or the snapshot is older than AUDIT_SNAPSHOT_MAX_AGE_DAYS).
"""

import json
import os
import subprocess
import sys
import threading
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

OSV_URL = "https://api.osv.dev/v1/query"
SNAPSHOT = Path(__file__).with_name("osv-snapshot.json")
SNAPSHOT_MAX_AGE_DAYS = int(os.environ.get("AUDIT_SNAPSHOT_MAX_AGE_DAYS", "180"))
PIP_AUDIT = [sys.executable, "-m", "pip_audit", "--vulnerability-service", "osv", "--progress-spinner", "off"]
# The project itself is installed editable and is not on PyPI.
DEFAULT_TARGET = ["--skip-editable"]


def osv_reachable(timeout: float = 5) -> bool:
    try:
        response = requests.post(OSV_URL, json={"package": {"name": "pip", "ecosystem": "PyPI"}}, timeout=timeout)
    except requests.RequestException:
        return False
    return response.ok


def affects(vuln: dict, name: str, version: Version) -> bool:
    """Whether an OSV record lists ``version`` of PyPI package ``name`` as affected (its ECOSYSTEM ranges)."""
    for affected in vuln.get("affected", []):
        package = affected.get("package", {})
        if package.get("ecosystem") != "PyPI" or canonicalize_name(package.get("name", "")) != name:
            continue
        if str(version) in affected.get("versions", []):
            return True
        for events in (r["events"] for r in affected.get("ranges", []) if r.get("type") == "ECOSYSTEM"):
            introduced = None
            for event in events:
                if "introduced" in event:
                    introduced = Version("0") if event["introduced"] == "0" else Version(event["introduced"])
                elif introduced is not None and "fixed" in event:
                    if introduced <= version < Version(event["fixed"]):
                        return True
                    introduced = None
                elif introduced is not None and "last_affected" in event:
                    if introduced <= version <= Version(event["last_affected"]):
                        return True
                    introduced = None
            if introduced is not None and version >= introduced:
                return True
    return False


class SnapshotOsv(ThreadingHTTPServer):
    """``POST /v1/query`` as api.osv.dev answers it, from the snapshot; remembers what was asked."""

    def __init__(self, vulns: list[dict]):
        super().__init__(("127.0.0.1", 0), _QueryHandler)
        self.vulns = vulns
        self.queried: set[str] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1/query"


class _QueryHandler(BaseHTTPRequestHandler):
    server: SnapshotOsv

    def do_POST(self):
        query = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        name = canonicalize_name(query["package"]["name"])
        self.server.queried.add(name)
        try:
            version = Version(query["version"])
        except InvalidVersion:
            matches = []
        else:
            matches = [vuln for vuln in self.server.vulns if affects(vuln, name, version)]
        body = json.dumps({"vulns": matches} if matches else {}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        """Quiet: pip-audit's output is the report."""


def audit_offline(args: list[str]) -> int:
    snapshot = json.loads(SNAPSHOT.read_text())
    age = (date.today() - date.fromisoformat(snapshot["retrieved"])).days
    covered = {
        canonicalize_name(affected["package"]["name"]) for vuln in snapshot["vulns"] for affected in vuln["affected"]
    }
    server = SnapshotOsv(snapshot["vulns"])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        code = subprocess.run([*PIP_AUDIT, "--osv-url", server.url, *args], check=False).returncode
    finally:
        server.shutdown()

    checked = sorted(server.queried & covered)
    print(
        f"\naudit: OFFLINE (api.osv.dev unreachable). Checked against {SNAPSHOT.name}, retrieved "
        f"{snapshot['retrieved']} ({age} days ago): {len(snapshot['vulns'])} advisories for "
        f"{', '.join(sorted(covered))}."
        f"\naudit: {len(server.queried)} packages queried; {len(checked)} have advisories in the snapshot "
        f"({', '.join(checked) or 'none'}), the other {len(server.queried) - len(checked)} were NOT checked."
        "\naudit: this is not a complete audit; run it where api.osv.dev is reachable for one.",
        file=sys.stderr,
    )
    if not server.queried:
        print("audit: FAILED: pip-audit asked about no package, nothing was checked.", file=sys.stderr)
        return 2
    if code != 0:
        return code
    if age > SNAPSHOT_MAX_AGE_DAYS:
        print(f"audit: FAILED: the snapshot is older than {SNAPSHOT_MAX_AGE_DAYS} days; refresh it.", file=sys.stderr)
        return 2
    if os.environ.get("AUDIT_REQUIRE_ONLINE") == "1":
        print("audit: FAILED: AUDIT_REQUIRE_ONLINE=1 and OSV is unreachable.", file=sys.stderr)
        return 2
    return 0


def main(args: list[str]) -> int:
    args = args or DEFAULT_TARGET
    if os.environ.get("AUDIT_OFFLINE") != "1" and osv_reachable():
        print("audit: online, against api.osv.dev", file=sys.stderr)
        return subprocess.run([*PIP_AUDIT, *args], check=False).returncode
    return audit_offline(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
