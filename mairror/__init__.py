"""Mairror: age and gender for every face in a photo, as a self-hosted service."""

# Loaded with Django so that shared_task binds to this app and on_commit enqueues reach Redis.
from mairror.celery import app as celery_app

__all__ = ("celery_app",)
