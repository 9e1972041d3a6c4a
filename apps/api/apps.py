from django.apps import AppConfig


class ApiConfig(AppConfig):
    """The public JSON API: API keys, their requests and rate limits, and the one error format."""

    name = "apps.api"
