from django.apps import AppConfig


class WebConfig(AppConfig):
    """The upload page: anyone sends a photo from a browser, without an account, and sees every face in it."""

    name = "apps.web"
