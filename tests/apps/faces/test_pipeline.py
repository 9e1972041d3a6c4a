from apps.faces.pipeline import face_pipeline


def test_one_pipeline_per_process(model_weights):
    """Workers load the models once, not per task."""
    pipeline = face_pipeline()

    assert face_pipeline() is pipeline
    assert pipeline.weights_dir == model_weights


def test_detection_size_comes_from_the_settings(model_weights, settings):
    settings.DETECTION_MAX_SHORT_SIDE = 1600
    face_pipeline.cache_clear()
    try:
        assert face_pipeline().max_short_side == 1600
    finally:
        face_pipeline.cache_clear()
