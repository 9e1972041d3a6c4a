"""Values every page shows."""

from django.conf import settings


def retention(request) -> dict:
    """The footer tells every visitor how long their photos are kept."""
    return {"retention_days": settings.RETENTION_DAYS}
