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


class ModelVersion(models.Model):
    """A trained age/gender model the ml workers can serve; exactly one is active, and serves every new photo.

    Its weights (``ml.inference.WEIGHTS_FILES``) lie in the file storage under ``weights_prefix``, where
    every worker fetches them; the weights shipped in the code (``ML_WEIGHTS_DIR``) have none. A
    candidate comes from ``train_from_reviews`` with two tables measured in one run on the same photos:
    its own figures (``metrics``) and its parent's (``baseline_metrics``), per evaluation set.
    """

    class State(models.TextChoices):
        CANDIDATE = "candidate"
        ACTIVE = "active"
        RETIRED = "retired"

    version = models.CharField(
        max_length=64, unique=True, help_text="ml.inference's model_version: a hash of the weights."
    )
    state = models.CharField(max_length=16, choices=State, default=State.CANDIDATE)
    weights_prefix = models.CharField(
        max_length=200,
        blank=True,
        help_text="Folder in the file storage holding the weights; empty: those shipped in the code (ML_WEIGHTS_DIR).",
    )
    image_size = models.PositiveSmallIntegerField(help_text="Side of the aligned face crops it takes, in pixels.")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children", help_text="Fine-tuned from."
    )
    training_data = models.JSONField(default=dict, blank=True, help_text="What it was trained on, and how.")
    metrics = models.JSONField(
        default=dict, blank=True, help_text="Per evaluation set: its figures (ml.evaluate_all's summary row)."
    )
    baseline_metrics = models.JSONField(
        default=dict, blank=True, help_text="Per evaluation set: the parent's figures, measured in the same run."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    promoted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    promoted_at = models.DateTimeField(null=True, blank=True)
    promotion_forced = models.BooleanField(
        default=False, help_text="Promoted although it measured worse than the version it replaced."
    )
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["state"], condition=models.Q(state="active"), name="one_active_model_version"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.version} ({self.state})"


class TrainingRun(models.Model):
    """One ``train_from_reviews``: the reviewed faces exported, the active model fine-tuned on them, the
    candidate and the active one measured, the candidate registered. Progress is written as it goes."""

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    state = models.CharField(max_length=16, choices=State, default=State.QUEUED)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    parameters = models.JSONField(default=dict, blank=True)
    base = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+", help_text="Fine-tuned from."
    )
    candidate = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="training_runs"
    )
    progress = models.FloatField(default=0.0, help_text="0 to 1.")
    stage = models.CharField(max_length=200, blank=True)
    log_tail = models.TextField(blank=True, help_text="The run's last log lines.")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"training run {self.pk} ({self.state})"
