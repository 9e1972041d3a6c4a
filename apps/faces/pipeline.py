"""The worker's one FacePipeline: the models load once per process, when an ml worker process starts
(``apps.faces.signals``), or else on the first task that needs them.

The age/gender weights it serves can change between two tasks (``face_pipeline_serve``: ``apps.predictions``
has each worker follow the active model version); detection (MTCNN) stays loaded, shared by old and new.
"""

from pathlib import Path

from django.conf import settings

_serving = None  # the ml.inference.FacePipeline of this process, once made


def face_pipeline():
    """The ``ml.inference.FacePipeline`` this process serves now: on the weights last given to ``face_pipeline_serve``,
    else on ML_WEIGHTS_DIR (imported here, not at module level: web processes never load ml)."""
    global _serving
    if _serving is None:
        from ml.inference import FacePipeline

        _serving = FacePipeline(settings.ML_WEIGHTS_DIR, max_short_side=settings.DETECTION_MAX_SHORT_SIDE)
    return _serving


def face_pipeline_serve(weights_dir: Path):
    """Serve the weights in ``weights_dir`` from now on. Their network is loaded and warmed before it replaces the
    old one, so until then, or if that fails (the error is raised), the old one serves. Only between tasks: all the
    steps of one task must see the same model."""
    global _serving
    pipeline = face_pipeline().with_weights(weights_dir)
    pipeline.warm_up()
    _serving = pipeline
    return pipeline


def face_pipeline_reset() -> None:
    """Forget this process's pipeline: the next ``face_pipeline`` makes one from the settings (tests change them)."""
    global _serving
    _serving = None
