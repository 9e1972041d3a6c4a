"""A photo of faces side by side, of other sizes, mirrored and turned, through the real pipeline (MTCNN and
the model): faces numbered left to right among the largest, each with a plausible pose and quality, the
same in MongoDB and SQL, and redelivered tasks that write over the faces instead of adding more."""

import cv2
import numpy as np
import pytest
import skimage.data
from bson import ObjectId
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.faces.services import faces_detect
from apps.predictions.models import FaceEstimate
from apps.predictions.services import faces_estimate, prediction_request
from apps.uploads.models import Upload
from apps.uploads.services import upload_create
from tests.support import encode, wait_until_finished

pytestmark = pytest.mark.django_db(transaction=True)

MAX_FACES = 3
TURNED = 20  # degrees the third face is turned, anticlockwise as seen


def tile(scale: float, mirrored: bool = False, turned: float = 0.0) -> np.ndarray:
    """The astronaut's face (170 x 200 with some margin), resized, mirrored and turned in the image plane."""
    face = skimage.data.astronaut()[20:220, 140:310]
    face = np.ascontiguousarray(face[:, ::-1] if mirrored else face)
    face = cv2.resize(face, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    height, width = face.shape[:2]
    turn = cv2.getRotationMatrix2D((width / 2, height / 2), turned, 1.0)
    return cv2.warpAffine(face, turn, (width, height), borderMode=cv2.BORDER_REPLICATE)


def side_by_side() -> bytes:
    """Four faces in a row on grey: MTCNN is most sure of the second, and the fourth is the smallest."""
    tiles = [tile(0.8), tile(1.2, mirrored=True), tile(1.0, turned=TURNED), tile(0.6, mirrored=True)]
    height = max(t.shape[0] for t in tiles) + 40
    canvas = np.full((height, sum(t.shape[1] for t in tiles) + 40 * (len(tiles) + 1), 3), 128, np.uint8)
    x = 40
    for face in tiles:
        top = (height - face.shape[0]) // 2
        canvas[top : top + face.shape[0], x : x + face.shape[1]] = face
        x += face.shape[1] + 40
    return encode(canvas, quality=92)


@pytest.fixture(scope="module")
def worker_env():
    return {"MAX_FACES_PER_PHOTO": str(MAX_FACES)}


@pytest.fixture
def max_faces(settings):
    settings.MAX_FACES_PER_PHOTO = MAX_FACES


def centre_x(face: FaceEstimate) -> float:
    return face.box_x + face.box_width / 2


def assert_numbered_left_to_right_with_pose_and_quality(upload: Upload, faces) -> list[FaceEstimate]:
    upload.refresh_from_db()
    assert (upload.status, upload.faces_found) == (Upload.Status.DONE, 4)
    rows = list(upload.faces.order_by("face_index"))
    assert [row.number for row in rows] == [1, 2, 3]
    centres = [centre_x(row) for row in rows]
    assert centres == sorted(centres) and len(set(centres)) == 3
    assert min(row.face_size for row in rows) > 60  # the smallest face (~51 px) was the one left out
    left, mirrored, turned = rows
    # The same face: mirrored it tilts the other way, and turned in the photo its roll changes by as much.
    assert left.pose_roll + mirrored.pose_roll == pytest.approx(0, abs=3)
    assert turned.pose_roll == pytest.approx(left.pose_roll - TURNED, abs=5)
    for row in rows:
        assert abs(row.pose_yaw) < 15 and -30 < row.pose_pitch < 10  # facing the camera, a little lowered
        assert 40 < row.sharpness < 100 and 50 < row.brightness < 90
        document = faces.find_one({"_id": ObjectId(row.mongo_face_id)})
        assert document["face_index"] == row.face_index
        assert document["pose"] == {"yaw": row.pose_yaw, "pitch": row.pose_pitch, "roll": row.pose_roll}
        assert document["quality"] == {"sharpness": row.sharpness, "brightness": row.brightness, "size": row.face_size}
    return rows


def test_a_worker_numbers_faces_left_to_right_with_their_pose_and_quality(worker, faces):
    upload = prediction_request(image=SimpleUploadedFile("group.jpg", side_by_side()), channel=Upload.Channel.API)

    wait_until_finished(upload.pk)

    assert_numbered_left_to_right_with_pose_and_quality(upload, faces)


def test_redelivered_tasks_write_over_the_faces(faces, max_faces):
    """Each step delivered twice (a worker lost before acknowledging): one document and one row per face."""
    upload = upload_create(image=SimpleUploadedFile("group.jpg", side_by_side()), channel=Upload.Channel.API)

    face_ids = faces_detect(upload_id=str(upload.pk))
    assert faces_detect(upload_id=str(upload.pk)) == face_ids
    faces_estimate(face_ids=face_ids, upload_id=str(upload.pk))
    Upload.objects.filter(pk=upload.pk).update(status=Upload.Status.PROCESSING)  # as if it had not finished
    faces_estimate(face_ids=face_ids, upload_id=str(upload.pk))

    assert faces.count_documents({"upload_id": str(upload.pk)}) == MAX_FACES
    rows = assert_numbered_left_to_right_with_pose_and_quality(upload, faces)
    assert [row.mongo_face_id for row in rows] == face_ids
