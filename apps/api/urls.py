from django.urls import path

from apps.api.apis import PredictionDetailApi, PredictionListCreateApi

app_name = "api"

urlpatterns = [
    path("predictions", PredictionListCreateApi.as_view(), name="prediction-list"),
    path("predictions/<uuid:prediction_id>", PredictionDetailApi.as_view(), name="prediction-detail"),
]
