"""The weights shipped in the code (ML_WEIGHTS_DIR) as a model version: the active one, unless one is active
already (a database that served before). Their files stay in the code: no storage prefix."""

import json
from pathlib import Path

from django.conf import settings
from django.db import migrations

CARD_KEYS = ("trained_on", "mix", "balance", "seed", "epochs")  # what model.json says about the training data


def register_shipped(apps, schema_editor):
    ModelVersion = apps.get_model("predictions", "ModelVersion")
    card = json.loads((Path(settings.ML_WEIGHTS_DIR) / "model.json").read_text())
    none_active = not ModelVersion.objects.filter(state="active").exists()
    ModelVersion.objects.get_or_create(
        version=card["version"],
        defaults={
            "state": "active" if none_active else "candidate",
            "image_size": card["image_size"],
            "training_data": {key: card[key] for key in CARD_KEYS if key in card},
        },
    )


class Migration(migrations.Migration):
    dependencies = [("predictions", "0007_model_registry")]

    operations = [migrations.RunPython(register_shipped, migrations.RunPython.noop)]
