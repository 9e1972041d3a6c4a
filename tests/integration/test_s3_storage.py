"""With S3 storage (a moto server), photos go to the bucket and DELETE removes them from it; registered model
weights go there too, and come back from it."""

import io

import boto3
import botocore.exceptions
import pytest
from django.core.files.storage import default_storage
from django.test import override_settings
from PIL import Image

from apps.predictions.models import FaceEstimate
from apps.predictions.services import model_version_register, model_weights_local
from apps.uploads.models import Upload
from devtools import devstack
from tests.support import make_client, photo_file, wait_until_finished

pytestmark = pytest.mark.django_db(transaction=True)

BUCKET = "mairror-test-photos"
S3_SETTINGS = {
    "AWS_STORAGE_BUCKET_NAME": BUCKET,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_S3_REGION_NAME": "us-east-1",
}


@pytest.fixture(scope="module")
def s3_server():
    service = devstack.start_s3()
    yield service
    service.stop()


@pytest.fixture(scope="module")
def bucket(s3_server):
    s3 = boto3.resource("s3", endpoint_url=s3_server.url, **_boto3_credentials())
    s3.create_bucket(Bucket=BUCKET)
    return s3.Bucket(BUCKET)


@pytest.fixture(scope="module")
def worker_env(s3_server, bucket) -> dict[str, str]:
    """The worker is configured through the environment, as in production."""
    return {**S3_SETTINGS, "AWS_S3_ENDPOINT_URL": s3_server.url}


@pytest.fixture(scope="module", autouse=True)
def s3_storage(stores, s3_server, bucket):
    """This process stores uploads in the bucket too (inside ``stores``, whose overrides it must not undo)."""
    with override_settings(
        STORAGES={
            "default": {"BACKEND": "storages.backends.s3.S3Storage"},
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        },
        AWS_S3_ENDPOINT_URL=s3_server.url,
        AWS_DEFAULT_ACL=None,
        AWS_S3_FILE_OVERWRITE=False,
        **S3_SETTINGS,
    ):
        yield


def _boto3_credentials() -> dict:
    return {
        "aws_access_key_id": S3_SETTINGS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": S3_SETTINGS["AWS_SECRET_ACCESS_KEY"],
        "region_name": S3_SETTINGS["AWS_S3_REGION_NAME"],
    }


def object_exists(bucket, key: str) -> bool:
    try:
        bucket.Object(key).load()
    except botocore.exceptions.ClientError as error:
        if error.response["Error"]["Code"] in ("404", "NoSuchKey"):
            return False
        raise
    return True


def test_delete_removes_the_photo_from_the_bucket(worker, bucket, one_face_jpeg, faces):
    api = make_client("s3")[0]
    assert default_storage.__class__.__name__ == "S3Storage"

    response = api.post("/api/v1/predictions", {"image": photo_file(one_face_jpeg)}, format="multipart")
    assert response.status_code == 202
    upload = wait_until_finished(response.json()["id"])
    assert upload.status == Upload.Status.DONE, upload.failure_reason
    key = upload.image.name
    stored = Image.open(io.BytesIO(bucket.Object(key).get()["Body"].read()))  # the clean copy of the photo
    assert (stored.format, stored.size) == ("JPEG", (512, 512))
    assert upload.faces.count() == 1
    assert faces.count_documents({"upload_id": str(upload.pk)}) == 1

    assert api.delete(f"/api/v1/predictions/{upload.pk}").status_code == 204

    assert not object_exists(bucket, key)
    assert [item.key for item in bucket.objects.all()] == []
    assert faces.count_documents({"upload_id": str(upload.pk)}) == 0
    assert not Upload.objects.filter(pk=upload.pk).exists()
    assert not FaceEstimate.objects.filter(upload_id=upload.pk).exists()


def test_registered_model_weights_go_to_the_bucket_and_workers_fetch_them_from_it(bucket, tmp_path, settings):
    import keras

    from ml.inference import write_model
    from ml.model import build_model

    keras.utils.set_random_seed(5)
    write_model(build_model(32), tmp_path / "weights", 32, 1.0, {})
    settings.MODEL_CACHE_DIR = tmp_path / "cache"

    version = model_version_register(
        weights_dir=tmp_path / "weights", parent=None, training_data={}, metrics={}, baseline_metrics={}
    )

    keys = sorted(item.key for item in bucket.objects.filter(Prefix="models/"))
    assert keys == [f"models/{version.version}/age_gender.keras", f"models/{version.version}/model.json"]
    fetched = model_weights_local(model_version=version)
    assert fetched == tmp_path / "cache" / version.version
    assert (fetched / "age_gender.keras").read_bytes() == (tmp_path / "weights" / "age_gender.keras").read_bytes()
    for key in keys:
        bucket.Object(key).delete()
