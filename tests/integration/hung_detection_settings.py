"""Settings of test_time_limits' web server and worker: the real ones, with detection limited to 2 s (soft)
and 5 s (hard), and a detector that hangs on photos of two marker sizes:

- ``HANGS``: a wait in Python, which the soft limit's SoftTimeLimitExceeded interrupts;
- ``STUCK``: one that ignores it, as code stuck in native code would: only the hard limit ends it, by
  killing the pool process.

Other photos have no face, found at once. The detector is a stand-in (no TensorFlow to load in each
new pool process), so the limits can be seconds: what is tested is the worker, not the models.

The web server needs these settings too: a task's time limits travel in its message, from the
process that queued it.
"""

import contextlib
import os
import time

from celery.exceptions import SoftTimeLimitExceeded

import apps.faces.pipeline
from mairror.settings import *  # noqa: F403

DETECTION_SOFT_TIME_LIMIT = 2
DETECTION_TIME_LIMIT = 5
HANGS = (300, 301)  # (height, width) of the photo
STUCK = (300, 302)


class _HangingDetector:
    model_version = "hanging-test-detector"

    def warm_up(self):
        """Nothing to load (each new pool process warms its pipeline up before it takes a task)."""

    def find_faces(self, images):
        if images[0].shape[:2] == HANGS:
            time.sleep(3600)
        if images[0].shape[:2] == STUCK:
            while True:
                with contextlib.suppress(SoftTimeLimitExceeded):
                    time.sleep(3600)
        return [[] for _ in images]


# Only where these are the settings: test_time_limits imports this module for its numbers, and the test process's
# own pipeline must stay the real one.
if os.environ.get("DJANGO_SETTINGS_MODULE") == __name__:
    apps.faces.pipeline.face_pipeline = _HangingDetector
