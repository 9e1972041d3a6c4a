from django.conf import settings
from django.core.validators import MaxValueValidator
from django.db import models
from django.utils import timezone

from apps.uploads.models import Upload

MAX_AGE = 120


class FaceEstimate(models.Model):
    """Age and gender of one face of an upload, with where the face is (upright-photo pixels) and how usable:
    its approximate head pose and image quality (``ml.face_quality``, docs/face_quality.md), null on rows
    made before they were computed."""

    class Gender(models.TextChoices):
        FEMALE = "female"
        MALE = "male"

    upload = models.ForeignKey(Upload, on_delete=models.CASCADE, related_name="faces")
    face_index = models.PositiveSmallIntegerField(
        help_text="Left to right by box centre (then top to bottom) among the faces analysed: 0 is the leftmost."
    )
    mongo_face_id = models.CharField(max_length=24, help_text="The face document (crop, raw outputs) in MongoDB.")
    box_x = models.IntegerField()
    box_y = models.IntegerField()
    box_width = models.PositiveIntegerField()
    box_height = models.PositiveIntegerField()
    landmarks = models.JSONField(help_text='{"left_eye": [x, y], ...} in ml.alignment.LANDMARK_NAMES order.')
    detection_confidence = models.FloatField()
    pose_yaw = models.FloatField(
        null=True, help_text="Degrees, approximate; > 0: the head turned to the photo's right."
    )
    pose_pitch = models.FloatField(null=True, help_text="Degrees, approximate; > 0: the face looks up.")
    pose_roll = models.FloatField(null=True, help_text="Degrees; > 0: the head tilted clockwise as seen.")
    sharpness = models.FloatField(null=True, help_text="0-100; 50 is as sharp as the median UTKFace training face.")
    brightness = models.FloatField(null=True, help_text="0-100: the mean luma of the face.")
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

    @property
    def number(self) -> int:
        """The face's number as people see it, on the page's badges, the API's ``index`` and Telegram: from 1."""
        return self.face_index + 1

    @property
    def face_size(self) -> int:
        """The box's shorter side in pixels of the upright photo: the quality's face size, for every row."""
        return min(self.box_width, self.box_height)

    @property
    def short_label(self) -> str:
        """What a box on the photo says, e.g. "F, 31 (26-37)": gender, age, and the age interval."""
        return f"{self.gender_label[0].upper()}, {self.age_value:.0f} ({self.age_low:.0f}-{self.age_high:.0f})"


class EstimateReview(models.Model):
    """A person's verdict on one face: the true age and gender as a reviewer sees them.

    Kept beside the estimate, never written over it, so the model can be measured against people.
    Reviews are only ever added: the newest one of a face counts, older ones stay as its history.
    """

    estimate = models.ForeignKey(FaceEstimate, on_delete=models.CASCADE, related_name="reviews")
    # PROTECT: who reviewed must stay known; deactivate a reviewer's account instead of deleting it.
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="estimate_reviews")
    reviewed_at = models.DateTimeField(default=timezone.now)
    confirmed = models.BooleanField(help_text="The reviewer agreed with the predicted age and gender as they were.")
    age = models.PositiveSmallIntegerField(
        validators=[MaxValueValidator(MAX_AGE)], help_text="Years, per the reviewer."
    )
    gender = models.CharField(max_length=8, choices=FaceEstimate.Gender, help_text="Per the reviewer.")

    class Meta:
        ordering = ["-reviewed_at", "-pk"]
        indexes = [models.Index(fields=["estimate", "-reviewed_at"], name="review_estimate_latest")]
        permissions = [("review_estimates", "Can confirm or correct estimated age and gender")]

    def __str__(self) -> str:
        return f"{self.estimate}: {self.gender}, {self.age} by {self.reviewer}"
