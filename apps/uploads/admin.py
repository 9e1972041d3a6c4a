from django.contrib import admin

from apps.uploads.models import Upload


@admin.register(Upload)
class UploadAdmin(admin.ModelAdmin):
    list_display = ["id", "created_at", "channel", "owner", "status", "width", "height"]
    list_filter = ["status", "channel"]
    readonly_fields = ["id", "created_at", "updated_at", "started_at", "finished_at", "timings"]
