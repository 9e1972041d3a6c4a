from django.apps import AppConfig


class UploadsConfig(AppConfig):
    """Photos people send, how they are stored, and where each one is in the pipeline."""

    name = "apps.uploads"
