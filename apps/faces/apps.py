from django.apps import AppConfig


class FacesConfig(AppConfig):
    """Face detection: the aligned crops and boxes found in an upload, kept in MongoDB."""

    name = "apps.faces"
