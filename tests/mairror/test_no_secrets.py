"""No credential is committed: every file git would commit is scanned for the shapes real secrets have."""

import re
import subprocess

from mairror.settings import BASE_DIR

# The shapes of credentials this project could leak; each would be live the moment it is pushed.
SECRET_PATTERNS = {
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "Telegram bot token": re.compile(r"\b[0-9]{8,10}:AA[A-Za-z0-9_-]{33}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36}\b"),
    "Slack token": re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    "Django secret key in a file": re.compile(r"DJANGO_SECRET_KEY\s*[=:]\s*['\"]?[^\s'\"$]{40,}"),
}


def committed_files() -> list[str]:
    """Tracked files and new ones git does not ignore: what the next commit could hold."""
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=BASE_DIR,
        capture_output=True,
        check=True,
    )
    return [name for name in listing.stdout.decode().split("\0") if name and (BASE_DIR / name).is_file()]


def secrets_in(text: str) -> list[str]:
    return [kind for kind, pattern in SECRET_PATTERNS.items() if pattern.search(text)]


def test_the_patterns_recognise_real_looking_credentials():
    # Assembled here, so that this file itself holds none of them.
    samples = {
        "private key": "-----BEGIN RSA " + "PRIVATE KEY-----",
        "AWS access key id": "AKIA" + "Q" * 16,
        "Telegram bot token": "123456789:AA" + "x" * 33,
        "GitHub token": "ghp_" + "a1" * 18,
        "Slack token": "xoxb-" + "1234567890-abc",
        "Django secret key in a file": "DJANGO_SECRET_KEY=" + "k" * 50,
    }
    for kind, sample in samples.items():
        assert secrets_in(sample) == [kind]
    assert secrets_in("DJANGO_SECRET_KEY: ${DJANGO_SECRET_KEY:?set DJANGO_SECRET_KEY}") == []


def test_no_committed_file_holds_a_credential():
    files = committed_files()
    assert "mairror/settings.py" in files  # the listing works

    found = []
    for name in files:
        data = (BASE_DIR / name).read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary: photos, model weights
        found += [f"{name}: {kind}" for kind in secrets_in(data.decode("utf-8", errors="replace"))]

    assert found == []
