"""FacePrediction is FaceEstimate and PredictionReview is EstimateReview (its ``prediction`` is ``estimate``):
"prediction" means only the API's resource, an upload with its estimates (and ml.types.FacePrediction).

Django renames the tables and the content types; the permissions keep their rows (and so the
Reviewers group keeps them) under their new codenames and names.
"""

from django.conf import settings
from django.db import migrations, models

PERMISSIONS = [
    (f"{action}_{old}", f"{action}_{new}", f"Can {action} {old_name}", f"Can {action} {new_name}")
    for action in ("add", "change", "delete", "view")
    for old, new, old_name, new_name in (
        ("faceprediction", "faceestimate", "face prediction", "face estimate"),
        ("predictionreview", "estimatereview", "prediction review", "estimate review"),
    )
] + [
    (
        "review_predictions",
        "review_estimates",
        "Can confirm or correct predicted age and gender",
        "Can confirm or correct estimated age and gender",
    )
]


def rename_permissions(apps, schema_editor, forward: bool = True) -> None:
    Permission = apps.get_model("auth", "Permission")
    permissions = Permission.objects.using(schema_editor.connection.alias).filter(content_type__app_label="predictions")
    for old, new, old_name, new_name in PERMISSIONS:
        if not forward:
            old, new, old_name, new_name = new, old, new_name, old_name
        permissions.filter(codename=old).update(codename=new, name=new_name)


def rename_permissions_back(apps, schema_editor) -> None:
    rename_permissions(apps, schema_editor, forward=False)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("predictions", "0004_keep_reviewed_uploads"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RenameModel("FacePrediction", "FaceEstimate"),
        migrations.RenameModel("PredictionReview", "EstimateReview"),
        # An index names its fields: it is made again on the renamed one.
        migrations.RemoveIndex("estimatereview", "review_prediction_latest"),
        migrations.RenameField("estimatereview", "prediction", "estimate"),
        migrations.AddIndex(
            "estimatereview", models.Index(fields=["estimate", "-reviewed_at"], name="review_estimate_latest")
        ),
        migrations.AlterField(
            model_name="estimatereview",
            name="reviewer",
            field=models.ForeignKey(
                on_delete=models.deletion.PROTECT, related_name="estimate_reviews", to=settings.AUTH_USER_MODEL
            ),
        ),
        migrations.AlterModelOptions(
            name="estimatereview",
            options={
                "ordering": ["-reviewed_at", "-pk"],
                "permissions": [("review_estimates", "Can confirm or correct estimated age and gender")],
            },
        ),
        migrations.RunPython(rename_permissions, rename_permissions_back),
    ]
