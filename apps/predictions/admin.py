from django.contrib import admin

from apps.predictions.models import FacePrediction


@admin.register(FacePrediction)
class FacePredictionAdmin(admin.ModelAdmin):
    list_display = ["upload", "face_index", "age_value", "gender_label", "gender_probability", "model_version"]
    list_filter = ["gender_label", "model_version"]
    raw_id_fields = ["upload"]
