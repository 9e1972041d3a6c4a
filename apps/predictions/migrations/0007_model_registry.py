"""The model registry: model versions the workers serve, and the training runs that make candidates."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("predictions", "0006_face_pose_quality_left_to_right"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="ModelVersion",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "version",
                    models.CharField(
                        help_text="ml.inference's model_version: a hash of the weights.", max_length=64, unique=True
                    ),
                ),
                (
                    "state",
                    models.CharField(
                        choices=[("candidate", "Candidate"), ("active", "Active"), ("retired", "Retired")],
                        default="candidate",
                        max_length=16,
                    ),
                ),
                (
                    "weights_prefix",
                    models.CharField(
                        blank=True,
                        help_text="Folder in the file storage holding the weights; empty: those shipped in the code (ML_WEIGHTS_DIR).",
                        max_length=200,
                    ),
                ),
                (
                    "image_size",
                    models.PositiveSmallIntegerField(help_text="Side of the aligned face crops it takes, in pixels."),
                ),
                (
                    "training_data",
                    models.JSONField(blank=True, default=dict, help_text="What it was trained on, and how."),
                ),
                (
                    "metrics",
                    models.JSONField(
                        blank=True,
                        default=dict,
                        help_text="Per evaluation set: its figures (ml.evaluate_all's summary row).",
                    ),
                ),
                (
                    "baseline_metrics",
                    models.JSONField(
                        blank=True,
                        default=dict,
                        help_text="Per evaluation set: the parent's figures, measured in the same run.",
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("promoted_at", models.DateTimeField(blank=True, null=True)),
                (
                    "promotion_forced",
                    models.BooleanField(
                        default=False, help_text="Promoted although it measured worse than the version it replaced."
                    ),
                ),
                ("retired_at", models.DateTimeField(blank=True, null=True)),
                (
                    "parent",
                    models.ForeignKey(
                        blank=True,
                        help_text="Fine-tuned from.",
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="children",
                        to="predictions.modelversion",
                    ),
                ),
                (
                    "promoted_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at", "-pk"],
            },
        ),
        migrations.CreateModel(
            name="TrainingRun",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "state",
                    models.CharField(
                        choices=[("queued", "Queued"), ("running", "Running"), ("done", "Done"), ("failed", "Failed")],
                        default="queued",
                        max_length=16,
                    ),
                ),
                ("parameters", models.JSONField(blank=True, default=dict)),
                ("progress", models.FloatField(default=0.0, help_text="0 to 1.")),
                ("stage", models.CharField(blank=True, max_length=200)),
                ("log_tail", models.TextField(blank=True, help_text="The run's last log lines.")),
                ("error", models.TextField(blank=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("started_at", models.DateTimeField(blank=True, null=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                (
                    "base",
                    models.ForeignKey(
                        blank=True,
                        help_text="Fine-tuned from.",
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="predictions.modelversion",
                    ),
                ),
                (
                    "candidate",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="training_runs",
                        to="predictions.modelversion",
                    ),
                ),
                (
                    "requested_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at", "-pk"],
            },
        ),
        migrations.AddConstraint(
            model_name="modelversion",
            constraint=models.UniqueConstraint(
                condition=models.Q(("state", "active")), fields=("state",), name="one_active_model_version"
            ),
        ),
    ]
