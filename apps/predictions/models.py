from django.db import models

from apps.uploads.models import Upload


class FacePrediction(models.Model):
    """Age and gender of one face of an upload, with where the face is (upright-photo pixels)."""

    class Gender(models.TextChoices):
        FEMALE = "female"
        MALE = "male"

    upload = models.ForeignKey(Upload, on_delete=models.CASCADE, related_name="faces")
    face_index = models.PositiveSmallIntegerField(help_text="0 is the most confident detection.")
    mongo_face_id = models.CharField(max_length=24, help_text="The face document (crop, raw outputs) in MongoDB.")
    box_x = models.IntegerField()
    box_y = models.IntegerField()
    box_width = models.PositiveIntegerField()
    box_height = models.PositiveIntegerField()
    landmarks = models.JSONField(help_text='{"left_eye": [x, y], ...} in ml.alignment.LANDMARK_NAMES order.')
    detection_confidence = models.FloatField()
    age_value = models.FloatField()
    age_low = models.FloatField()
    age_high = models.FloatField()
    age_level = models.FloatField(help_text="Probability mass of the [low, high] interval.")
    gender_label = models.CharField(max_length=8, choices=Gender)
    gender_probability = models.FloatField()
    model_version = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["upload", "face_index"]
        constraints = [
            # A redelivered estimation task overwrites its rows instead of adding more.
            models.UniqueConstraint(fields=["upload", "face_index"], name="unique_face_per_upload"),
        ]

    def __str__(self) -> str:
        return f"{self.upload_id} #{self.face_index}: {self.gender_label}, {self.age_value:.0f}"
