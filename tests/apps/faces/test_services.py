import uuid
from dataclasses import asdict, replace

import numpy as np
import pytest
from bson import ObjectId

from apps.faces.selectors import face_crops_get, face_document_ids
from apps.faces.services import (
    face_documents_delete,
    face_documents_record_outputs,
    face_documents_store,
    faces_left_to_right,
    largest_faces,
)
from ml.inference import LANDMARK_NAMES, face_quality, head_pose
from tests.support import make_face


@pytest.fixture
def upload_id() -> str:
    return str(uuid.uuid4())


def test_store_writes_one_document_per_face_with_its_crop(faces, upload_id):
    detected = [make_face(0), make_face(1)]

    face_ids = face_documents_store(upload_id=upload_id, faces=detected, model_version="ag-test")

    assert len(face_ids) == 2
    crops = face_crops_get(upload_id=upload_id, face_ids=face_ids)
    assert [crop.id for crop in crops] == face_ids
    for crop, face in zip(crops, detected, strict=True):
        np.testing.assert_array_equal(crop.crop, face.crop)  # PNG is lossless
        assert crop.box == dict(zip(("x", "y", "width", "height"), face.detection.box, strict=True))
        assert list(crop.landmarks) == list(LANDMARK_NAMES)
        np.testing.assert_allclose([crop.landmarks[name] for name in LANDMARK_NAMES], face.detection.landmarks)
        assert crop.detection_confidence == face.detection.confidence
        assert crop.pose == asdict(head_pose(face.detection.landmarks))
        assert crop.quality == asdict(face_quality(face.crop, face.detection.box))
    document = faces.find_one({"_id": ObjectId(face_ids[0])})
    assert document["upload_id"] == upload_id
    assert document["face_index"] == 0
    assert (document["crop_size"], document["model_version"]) == (32, "ag-test")
    assert (crops[0].crop_size, crops[0].model_version) == (32, "ag-test")
    assert document["created_at"] is not None
    assert set(document["pose"]) == {"yaw", "pitch", "roll"}
    assert document["quality"]["size"] == 31  # the box's shorter side, 30.6 px
    assert 0 <= document["quality"]["sharpness"] <= 100 and 0 <= document["quality"]["brightness"] <= 100


def test_faces_stored_before_pose_and_quality_existed_have_none(faces, upload_id):
    face_ids = face_documents_store(upload_id=upload_id, faces=[make_face(0)], model_version="ag-test")
    faces.update_many({"upload_id": upload_id}, {"$unset": {"pose": "", "quality": ""}})

    [crop] = face_crops_get(upload_id=upload_id, face_ids=face_ids)

    assert (crop.pose, crop.quality) == (None, None)


def test_storing_again_upserts_instead_of_duplicating(faces, upload_id):
    first = face_documents_store(upload_id=upload_id, faces=[make_face(0), make_face(1)], model_version="ag-test")

    again = face_documents_store(upload_id=upload_id, faces=[make_face(0), make_face(1)], model_version="ag-test")

    assert again == first
    assert faces.count_documents({"upload_id": upload_id}) == 2


def test_storing_fewer_faces_drops_the_extra_documents(faces, upload_id):
    first = face_documents_store(
        upload_id=upload_id, faces=[make_face(0), make_face(1), make_face(2)], model_version="ag-test"
    )

    again = face_documents_store(upload_id=upload_id, faces=[make_face(0)], model_version="ag-test")

    assert again == first[:1]
    assert face_document_ids(upload_id=upload_id) == first[:1]


def test_a_first_run_inserts_its_faces_in_order(faces, upload_id):
    face_ids = face_documents_store(
        upload_id=upload_id, faces=[make_face(0), make_face(1)], model_version="ag-test", first_run=True
    )

    assert face_ids == face_document_ids(upload_id=upload_id)
    assert [crop.face_index for crop in face_crops_get(upload_id=upload_id, face_ids=face_ids)] == [0, 1]


def test_a_first_run_that_finds_faces_stored_by_a_racing_delivery_writes_over_them(faces, upload_id):
    """The delivery that claimed second stored first: the first run's insert meets its documents."""
    raced = face_documents_store(
        upload_id=upload_id, faces=[make_face(0), make_face(1), make_face(2)], model_version="ag-test"
    )

    face_ids = face_documents_store(
        upload_id=upload_id, faces=[make_face(5), make_face(6)], model_version="ag-new", first_run=True
    )

    assert face_ids == raced[:2]
    assert faces.count_documents({"upload_id": upload_id}) == 2
    crops = face_crops_get(upload_id=upload_id, face_ids=face_ids)
    np.testing.assert_array_equal(crops[0].crop, make_face(5).crop)
    assert {crop.model_version for crop in crops} == {"ag-new"}


def test_crops_are_read_only_for_their_own_upload(faces, upload_id):
    other_ids = face_documents_store(upload_id=str(uuid.uuid4()), faces=[make_face(0)], model_version="ag-test")

    assert face_crops_get(upload_id=upload_id, face_ids=other_ids) == []


def test_the_models_raw_outputs_are_kept_beside_the_crops_and_the_estimates_are_not(faces, upload_id):
    face_ids = face_documents_store(upload_id=upload_id, faces=[make_face(0), make_face(1)], model_version="ag-test")
    faces.update_one({"_id": ObjectId(face_ids[0])}, {"$set": {"estimate": {"age": {"value": 31.5}}}})  # as before
    ages = np.full((2, 101), 1 / 101)

    face_documents_record_outputs(
        face_ids=face_ids, model_version="ag-test", age_probabilities=ages, female_probabilities=np.array([0.93, 0.2])
    )

    first, second = (faces.find_one({"_id": ObjectId(face_id)}) for face_id in face_ids)
    assert "estimate" not in first and "estimate" not in second  # SQL's alone (FaceEstimate)
    assert first["raw"]["age_probabilities"] == [round(1 / 101, 6)] * 101
    assert (first["raw"]["p_female"], second["raw"]["p_female"]) == (0.93, 0.2)
    assert first["raw"]["model_version"] == "ag-test"


def test_delete_removes_only_that_uploads_faces(faces, upload_id):
    face_documents_store(upload_id=upload_id, faces=[make_face(0), make_face(1)], model_version="ag-test")
    other = str(uuid.uuid4())
    face_documents_store(upload_id=other, faces=[make_face(0)], model_version="ag-test")

    assert face_documents_delete(upload_id=upload_id) == 2

    assert faces.count_documents({"upload_id": upload_id}) == 0
    assert faces.count_documents({"upload_id": other}) == 1


def test_a_crowd_is_cut_to_its_largest_faces_in_their_order():
    sides = [30, 90, 50, 70, 10]
    crowd = [
        replace(make_face(i), detection=replace(make_face(i).detection, box=(0, 0, s, s))) for i, s in enumerate(sides)
    ]

    assert [face.detection.box[2] for face in largest_faces(crowd, 3)] == [90, 50, 70]
    assert largest_faces(crowd, 5) == crowd


def with_box(index: int, box: tuple[float, float, float, float]):
    return replace(make_face(index), detection=replace(make_face(index).detection, box=box))


def test_faces_are_ordered_left_to_right_by_box_centre_then_top_to_bottom():
    # Detected most confident first (make_face lowers the confidence with the index).
    detected = [
        with_box(0, (300, 0, 50, 50)),  # centre x 325
        with_box(1, (90, 100, 60, 60)),  # 120, below the next one
        with_box(2, (100, 0, 40, 40)),  # 120
        with_box(3, (0, 0, 10, 10)),  # 5
    ]

    ordered = faces_left_to_right(detected)

    assert ordered == [detected[3], detected[2], detected[1], detected[0]]


def test_faces_above_one_another_are_ordered_top_to_bottom_column_by_column():
    """A grid of faces whose centres are a pixel or two apart across: each column read from the top."""
    grid = {(column, row): (100 * column + (3 - row), 100 * row) for column in range(2) for row in range(3)}
    detected = [with_box(i, (x, y, 80, 80)) for i, (x, y) in enumerate(grid.values())]

    ordered = faces_left_to_right(detected)

    assert [face.detection.box[:2] for face in ordered] == [grid[key] for key in sorted(grid)]


def test_a_crowd_keeps_its_largest_faces_and_numbers_those_left_to_right():
    sides_and_x = [(30, 500), (90, 400), (50, 0), (70, 200), (10, 100)]
    crowd = [with_box(i, (x, 0, side, side)) for i, (side, x) in enumerate(sides_and_x)]

    kept = faces_left_to_right(largest_faces(crowd, 3))

    assert [face.detection.box[2] for face in kept] == [50, 70, 90]
