"""Web processes never import TensorFlow: it takes seconds and gigabytes, and only workers need it.

They may import ``ml.images`` (Pillow and NumPy only): the upload check decodes photos with the same
conversion the worker uses, so what is stored is what the models see.
"""

import json
import subprocess
import sys
import textwrap

from mairror.settings import BASE_DIR

WEB_PROCESS = textwrap.dedent("""
    import json, sys
    from mairror.wsgi import application
    from django.test import Client
    from mairror import celery_app

    celery_app.loader.import_default_modules()  # every tasks.py, as the web process imports them to enqueue
    client = Client()
    statuses = [
        client.get("/healthz").status_code,
        client.get("/api/schema/").status_code,
        client.post("/api/v1/predictions", {"image": b""}).status_code,
        client.get("/").status_code,
        client.post("/", {}).status_code,
    ]
    loaded = sorted(name for name in sys.modules if name.split(".")[0] in ("tensorflow", "keras", "mtcnn", "ml"))
    print(json.dumps({"statuses": statuses, "loaded": loaded}))
""")


def test_web_process_serves_requests_without_loading_tensorflow(tmp_path):
    env = {
        "DJANGO_SETTINGS_MODULE": "mairror.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "ALLOWED_HOSTS": "testserver",
    }

    result = subprocess.run(
        [sys.executable, "-c", WEB_PROCESS],
        cwd=BASE_DIR,
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )

    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["statuses"] == [200, 200, 401, 200, 400]
    assert set(report["loaded"]) <= {"ml", "ml.images"}
