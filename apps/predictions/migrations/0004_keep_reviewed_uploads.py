"""Keep the photos whose faces were reviewed before ``Upload.kept_for_training`` existed.

Reviewing a face now marks its upload kept (apps.predictions.services.prediction_review_create);
uploads reviewed earlier got the field's default, False, and the retention would have deleted them
with their reviews. The reverse does nothing: which uploads were kept by hand is not known.
"""

from django.db import migrations


def keep_reviewed_uploads(apps, schema_editor) -> int:
    Upload = apps.get_model("uploads", "Upload")
    PredictionReview = apps.get_model("predictions", "PredictionReview")
    database = schema_editor.connection.alias
    reviewed = PredictionReview.objects.using(database).values("prediction__upload_id")
    return (
        Upload.objects.using(database).filter(pk__in=reviewed, kept_for_training=False).update(kept_for_training=True)
    )


class Migration(migrations.Migration):
    dependencies = [
        ("predictions", "0003_reviewers_group"),
        ("uploads", "0002_upload_faces_found_requeue_kept"),
    ]

    operations = [migrations.RunPython(keep_reviewed_uploads, migrations.RunPython.noop, elidable=True)]
