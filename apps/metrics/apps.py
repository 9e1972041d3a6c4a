from django.apps import AppConfig


class MetricsConfig(AppConfig):
    """Prometheus metrics for operators (``/metrics``): recorded from the other apps' signals, so none of
    them imports this one (``apps.metrics.series`` says why prometheus-client)."""

    name = "apps.metrics"

    def ready(self):
        from celery.signals import worker_init
        from django.db.models.signals import post_save

        from apps.metrics import receivers
        from apps.ratelimits import rate_limited
        from apps.uploads.models import Upload
        from apps.uploads.signals import upload_finished

        post_save.connect(receivers.photo_accepted, sender=Upload, dispatch_uid="metrics_photo_accepted")
        upload_finished.connect(receivers.photo_finished, dispatch_uid="metrics_photo_finished")
        rate_limited.connect(receivers.upload_refused, dispatch_uid="metrics_upload_refused")
        worker_init.connect(receivers.worker_started, dispatch_uid="metrics_worker_started", weak=False)
