from django.apps import AppConfig


class PredictionsConfig(AppConfig):
    """The analysis: a photo submitted, its faces detected, then estimated; the sweeper, retention, reviews."""

    name = "apps.predictions"
