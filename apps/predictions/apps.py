from django.apps import AppConfig


class PredictionsConfig(AppConfig):
    """Age and gender per face, and the public JSON API that serves them."""

    name = "apps.predictions"
