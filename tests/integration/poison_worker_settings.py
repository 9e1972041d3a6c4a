"""Settings of test_poison_photo's worker: the real ones, with every photo killing the pool process that
decodes it (as a photo that runs it out of memory or crashes a decoder would), and a low
MAX_PROCESSING_ATTEMPTS so that giving up comes after two such deaths instead of thirteen.

The worker's main process survives each death, and with acks_late + reject_on_worker_lost it puts
the task back on the queue at once: without the limit the photo would be claimed for ever.
"""

import os
import signal

import ml.images
from mairror.settings import *  # noqa: F403

MAX_PROCESSING_ATTEMPTS = 2


def _die(source):
    """The decoder of a poison photo: takes the whole pool process with it, after the upload was claimed."""
    os.kill(os.getpid(), signal.SIGKILL)


ml.images.load_rgb = _die
