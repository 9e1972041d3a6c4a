from django.urls import path

from apps.web import views

app_name = "web"

urlpatterns = [
    path("", views.upload_page, name="upload"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("r/<uuid:upload_id>", views.result, name="result"),
    path("r/<uuid:upload_id>/status", views.status, name="status"),
    path("r/<uuid:upload_id>/events", views.events, name="events"),
    path("r/<uuid:upload_id>/photo.jpg", views.photo, name="photo"),
    path("r/<uuid:upload_id>/thumbnail.jpg", views.thumbnail, name="thumbnail"),
    path("r/<uuid:upload_id>/faces/<int:face_index>.png", views.face_crop, name="face_crop"),
    path("r/<uuid:upload_id>/delete", views.delete, name="delete"),
]
