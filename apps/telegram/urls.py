from django.urls import path

from apps.telegram.views import telegram_webhook

app_name = "telegram"

urlpatterns = [
    path("webhook", telegram_webhook, name="webhook"),
]
