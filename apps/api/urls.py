from django.urls import path

from apps.api.apis import PredictionListCreateApi
from apps.api.waits import prediction_detail

app_name = "api"

urlpatterns = [
    path("predictions", PredictionListCreateApi.as_view(), name="prediction-list"),
    path("predictions/<uuid:prediction_id>", prediction_detail, name="prediction-detail"),
]
