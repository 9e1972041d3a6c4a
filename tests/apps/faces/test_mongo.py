import os

from apps.faces.mongo import _faces_collection, faces_collection


def test_faces_have_a_unique_index_on_upload_and_face_index(faces):
    unique = [index["key"] for index in faces.list_indexes() if index.get("unique")]

    assert [("upload_id", 1), ("face_index", 1)] in [list(key.items()) for key in unique]


def test_one_client_per_process(settings):
    assert faces_collection() is faces_collection()
    # A forked child has another pid, so it gets its own client.
    assert _faces_collection(settings.MONGO_URL, settings.MONGO_DB, os.getpid() + 1) is not faces_collection()
