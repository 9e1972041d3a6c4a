from django.urls import path

from apps.predictions.apis import PredictionDetailApi, PredictionListCreateApi

app_name = "predictions"

urlpatterns = [
    path("predictions", PredictionListCreateApi.as_view(), name="list"),
    path("predictions/<uuid:prediction_id>", PredictionDetailApi.as_view(), name="detail"),
]
