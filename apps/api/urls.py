from django.urls import path

from apps.api.apis import FaceCropApi
from apps.api.waits import prediction_batch, prediction_detail, predictions

app_name = "api"

urlpatterns = [
    path("predictions", predictions, name="prediction-list"),
    path("predictions/batch", prediction_batch, name="prediction-batch"),
    path("predictions/<uuid:prediction_id>", prediction_detail, name="prediction-detail"),
    path("predictions/<uuid:prediction_id>/faces/<int:index>/crop", FaceCropApi.as_view(), name="prediction-face-crop"),
]
