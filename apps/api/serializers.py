"""The API's request and response shapes."""

from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.api.parsers import PhotoField
from apps.predictions.models import FaceEstimate
from apps.uploads.models import Upload
from apps.uploads.selectors import upload_faces_notice

MAX_WAIT_SECONDS = 30


class PredictionCreateInputSerializer(serializers.Serializer):
    # A plain file field: the uploads app checks the content itself and says precisely what is wrong.
    image = PhotoField(help_text="The photo (JPEG, PNG, WebP, HEIC, ...), checked by content.")


class PredictionCreateBase64InputSerializer(serializers.Serializer):
    """The JSON body's shape, for the schema (``PredictionCreateInputSerializer`` reads every body)."""

    image = serializers.CharField(
        help_text='The photo in base64, optionally as a data: URL ("data:image/jpeg;base64,..."). URLs are not fetched.'
    )


class PredictionBatchInputSerializer(serializers.Serializer):
    images = serializers.ListField(
        child=serializers.FileField(),
        help_text=f"The photos: the field repeated, one file each; at most {settings.MAX_BATCH_PHOTOS} "
        "(the server's MAX_BATCH_PHOTOS).",
    )


class PredictionWaitInputSerializer(serializers.Serializer):
    wait = serializers.FloatField(
        required=False,
        default=0,
        min_value=0,
        help_text=f"Seconds to wait for the analysis to finish (long polling); at most {MAX_WAIT_SECONDS}.",
    )

    def validate_wait(self, value: float) -> float:
        return min(value, MAX_WAIT_SECONDS)


class PredictionCreatedSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=Upload.Status.choices)
    url = serializers.URLField(help_text="Where to GET the result.")


class BoxSerializer(serializers.Serializer):
    x = serializers.IntegerField(source="box_x")
    y = serializers.IntegerField(source="box_y")
    width = serializers.IntegerField(source="box_width")
    height = serializers.IntegerField(source="box_height")


class AgeSerializer(serializers.Serializer):
    value = serializers.FloatField(source="age_value", help_text="Years.")
    low = serializers.FloatField(source="age_low")
    high = serializers.FloatField(source="age_high")
    level = serializers.FloatField(source="age_level", help_text="Probability that the age is in [low, high].")


class GenderSerializer(serializers.Serializer):
    label = serializers.ChoiceField(source="gender_label", choices=FaceEstimate.Gender.choices)
    probability = serializers.FloatField(source="gender_probability", help_text="Probability of this label.")


class BoxRelativeSerializer(serializers.Serializer):
    """The box as fractions of the photo's width and height (0..1), whatever size the client shows it at."""

    x = serializers.SerializerMethodField()
    y = serializers.SerializerMethodField()
    width = serializers.SerializerMethodField()
    height = serializers.SerializerMethodField()

    def get_x(self, face: FaceEstimate) -> float:
        return round(face.box_x / face.upload.width, 4)

    def get_y(self, face: FaceEstimate) -> float:
        return round(face.box_y / face.upload.height, 4)

    def get_width(self, face: FaceEstimate) -> float:
        return round(face.box_width / face.upload.width, 4)

    def get_height(self, face: FaceEstimate) -> float:
        return round(face.box_height / face.upload.height, 4)


class PoseSerializer(serializers.Serializer):
    """Approximate, from the five landmarks (docs/face_quality.md): tells a frontal face from a turned one."""

    yaw = serializers.FloatField(source="pose_yaw", help_text="Degrees; > 0: the head turned to the photo's right.")
    pitch = serializers.FloatField(source="pose_pitch", help_text="Degrees; > 0: the face looks up. The roughest.")
    roll = serializers.FloatField(source="pose_roll", help_text="Degrees; > 0: the head tilted clockwise as seen.")


class QualitySerializer(serializers.Serializer):
    """Whether a face is worth trusting, as Rekognition's Quality: drop those too small, blurred or dark."""

    sharpness = serializers.FloatField(help_text="0-100; 50 is as sharp as the median face the model learnt from.")
    brightness = serializers.FloatField(help_text="0-100: the mean luminance of the face.")
    face_px = serializers.IntegerField(source="face_size", help_text="The box's shorter side, in pixels.")


class FaceSerializer(serializers.Serializer):
    id = serializers.CharField(
        source="mongo_face_id", help_text="Stable for this face of this photo: the same in every answer."
    )
    index = serializers.IntegerField(
        source="number", help_text="1 is the leftmost face: the number the page and the Telegram photo show."
    )
    box = BoxSerializer(source="*", help_text="In pixels of the upright photo.")
    box_relative = BoxRelativeSerializer(source="*", help_text="The box as fractions of the photo's width and height.")
    landmarks = serializers.DictField(
        child=serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2),
        help_text="left_eye, right_eye, nose, mouth_left, mouth_right: [x, y] in pixels of the upright photo.",
    )
    detection_confidence = serializers.FloatField()
    age = AgeSerializer(source="*")
    gender = GenderSerializer(source="*")
    pose = serializers.SerializerMethodField(help_text="Null for faces analysed before poses were estimated.")
    quality = serializers.SerializerMethodField()
    model_version = serializers.CharField()
    crop_url = serializers.SerializerMethodField(
        help_text="The aligned face the models saw, as PNG; authenticated like the result."
    )

    @extend_schema_field(PoseSerializer(allow_null=True))
    def get_pose(self, face: FaceEstimate) -> dict | None:
        return None if face.pose_yaw is None else PoseSerializer(face).data

    @extend_schema_field(QualitySerializer)
    def get_quality(self, face: FaceEstimate) -> dict:
        """Sharpness and brightness are null for faces analysed before they were measured; the size never is."""
        return QualitySerializer(face).data

    def get_crop_url(self, face: FaceEstimate) -> str:
        url = reverse("api:prediction-face-crop", args=[face.upload_id, face.number])
        return self.context["request"].build_absolute_uri(url)


class ImageSizeSerializer(serializers.Serializer):
    width = serializers.IntegerField()
    height = serializers.IntegerField()


class PredictionSerializer(serializers.Serializer):
    """A prediction: one uploaded photo, where its analysis is, and the estimates of its faces."""

    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=Upload.Status.choices)
    failure_reason = serializers.CharField(help_text="Why the analysis failed; empty unless the status is failed.")
    created_at = serializers.DateTimeField()
    image = ImageSizeSerializer(source="*")
    faces = FaceSerializer(many=True, help_text="Left to right, by index; empty when there is no face.")
    faces_found = serializers.IntegerField(
        allow_null=True,
        help_text="Faces found in the photo (null before detection). More than in faces when the photo held more "
        "than the server's limit per photo: then only the largest were analysed.",
    )
    faces_notice = serializers.SerializerMethodField(
        help_text='Says when only some faces were analysed ("Only the 100 largest of the 130 faces found were '
        'analysed."); empty otherwise.'
    )
    timings = serializers.DictField(child=serializers.FloatField(), help_text="Milliseconds per pipeline stage.")

    def get_faces_notice(self, upload: Upload) -> str:
        return upload_faces_notice(faces_found=upload.faces_found, analysed=len(upload.faces.all()))


class PredictionInBatchSerializer(PredictionSerializer):
    """A prediction as GET answers it, and where to GET it again."""

    url = serializers.SerializerMethodField(help_text="Where to GET the result.")

    def get_url(self, upload: Upload) -> str:
        return prediction_url(self.context["request"], upload.pk)


def prediction_url(request, upload_id) -> str:
    return request.build_absolute_uri(reverse("api:prediction-detail", args=[upload_id]))
