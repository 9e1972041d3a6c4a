import secrets
import uuid
from pathlib import PurePath

from django.db import models
from rest_framework_api_key.models import APIKey

# The storage folder of every photo.
UPLOADS_DIR = "uploads"


def upload_image_path(upload: "Upload", filename: str) -> str:
    """An unguessable storage name: the upload id is shown to clients, so it is not reused here."""
    return f"{UPLOADS_DIR}/{secrets.token_urlsafe(24)}{PurePath(filename).suffix.lower()}"


class Upload(models.Model):
    """One photo sent for analysis, and where it is in the pipeline."""

    class Channel(models.TextChoices):
        API = "api", "API"
        WEB = "web", "Web page"
        TELEGRAM = "telegram", "Telegram"

    class Status(models.TextChoices):
        PENDING = "pending"
        PROCESSING = "processing"
        DONE = "done"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # PROTECT: deleting a key must not silently orphan photos in storage and MongoDB;
    # revoke the key instead, or delete its predictions first.
    owner = models.ForeignKey(APIKey, null=True, blank=True, on_delete=models.PROTECT, related_name="uploads")
    channel = models.CharField(max_length=16, choices=Channel)
    # Which browser sent a photo from the page: a keyed hash of its session key (never the key itself),
    # on the row, so that uploads sent at once from one browser cannot overwrite each other's claim.
    browser = models.CharField(max_length=64, blank=True, db_index=True)
    image = models.FileField(upload_to=upload_image_path, max_length=255)
    width = models.PositiveIntegerField(help_text="Upright width in pixels (EXIF orientation applied).")
    height = models.PositiveIntegerField(help_text="Upright height in pixels (EXIF orientation applied).")
    status = models.CharField(max_length=16, choices=Status, default=Status.PENDING, db_index=True)
    failure_reason = models.TextField(blank=True, help_text="Shown to the user when the status is failed.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    timings = models.JSONField(default=dict, blank=True, help_text="Milliseconds spent per pipeline stage.")
    faces_found = models.PositiveIntegerField(
        null=True, blank=True, help_text="Faces the detector found; more than were analysed beyond MAX_FACES_PER_PHOTO."
    )
    requeue_count = models.PositiveSmallIntegerField(
        default=0, help_text="Times the sweeper sent it to the pipeline again after it was stuck."
    )
    processing_attempts = models.PositiveSmallIntegerField(
        default=0, help_text="Times detection claimed it (retries, redeliveries, requeues); capped by a setting."
    )
    kept_for_training = models.BooleanField(
        default=False, help_text="A reviewer kept it for training: the retention period does not delete it."
    )

    class Meta:
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="upload_owner_recent"),
            models.Index(fields=["status", "updated_at"], name="upload_status_updated"),
            models.Index(fields=["created_at"], name="upload_created"),
        ]

    def __str__(self) -> str:
        return f"{self.id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)
