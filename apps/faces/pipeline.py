"""The worker's one FacePipeline: the models load once per process, when an ml worker process starts
(``apps.faces.signals``), or else on the first task that needs them."""

import functools

from django.conf import settings


@functools.cache
def face_pipeline():
    """The shared ``ml.inference.FacePipeline`` (imported here, not at module level: web processes never load ml)."""
    from ml.inference import FacePipeline

    return FacePipeline(settings.ML_WEIGHTS_DIR, max_short_side=settings.DETECTION_MAX_SHORT_SIDE)
