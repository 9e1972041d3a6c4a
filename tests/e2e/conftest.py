"""The app as people use it: gunicorn and a real worker, driven from Debian's Chromium through Playwright.

Screenshots go to ``test-artifacts/`` (git-ignored), kept after the run for a look at what the browser saw.
"""

import os
from pathlib import Path

import pytest
from django.core.management import call_command
from playwright.sync_api import sync_playwright

from devtools import devstack
from mairror.settings import BASE_DIR
from tests.e2e.support import PHONE
from tests.support import app_env

CHROMIUM = Path(os.environ.get("MAIRROR_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # A webcam that shows a test pattern, allowed without asking.
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]
ARTIFACTS = BASE_DIR / "test-artifacts"


@pytest.fixture(scope="module")
def web(worker, services_dir):
    """gunicorn serving the app (static files by WhiteNoise, collected as ``make run`` does) next to the worker."""
    call_command("collectstatic", interactive=False, verbosity=0)
    service = devstack.start_web(app_env(ALLOWED_HOSTS="127.0.0.1"), devstack.free_port(), services_dir / "e2e-web.log")
    yield service
    service.stop()


@pytest.fixture(scope="session")
def utkface_dir() -> Path:
    """The shared UTKFace copy, where the ml tests find it (``../shared/data/utkface`` or $MAIRROR_UTKFACE)."""
    path = Path(os.environ.get("MAIRROR_UTKFACE", BASE_DIR.parent / "shared" / "data" / "utkface"))
    if not (path / "labels.csv").exists():
        pytest.skip(f"UTKFace not found at {path}")
    return path


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium (or set MAIRROR_CHROMIUM)")
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are still synchronous.
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def desktop(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


@pytest.fixture
def phone(browser):
    context = browser.new_context(**PHONE)
    yield context.new_page()
    context.close()


@pytest.fixture
def screenshot(request):
    """Save the page as test-artifacts/<test>-<name>.png."""
    ARTIFACTS.mkdir(exist_ok=True)

    def save(page, name: str) -> None:
        page.screenshot(path=ARTIFACTS / f"{request.node.name}-{name}.png", full_page=True)

    return save
