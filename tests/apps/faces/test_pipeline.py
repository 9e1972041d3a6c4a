from apps.faces.pipeline import face_pipeline


def test_one_pipeline_per_process(model_weights):
    """Workers load the models once, not per task."""
    pipeline = face_pipeline()

    assert face_pipeline() is pipeline
    assert pipeline.weights_dir == model_weights
