from pathlib import Path

from django.core.management.base import BaseCommand

from apps.predictions.services import EXPORT_CROP_SIZE, reviewed_faces_export


class Command(BaseCommand):
    help = (
        "Write the reviewed faces to DIR as a dataset in the UTKFace layout (DIR/images/*.jpg, DIR/labels.csv), "
        "to fine-tune with `python -m ml.train --data DIR` or measure with "
        "`python -m ml.evaluate --labels DIR/labels.csv --images DIR/images`."
    )

    def add_arguments(self, parser):
        parser.add_argument("directory", type=Path, metavar="DIR")
        parser.add_argument("--size", type=int, default=EXPORT_CROP_SIZE, help="side of the square crops, in pixels")

    def handle(self, *args, directory: Path, size: int, **options):
        counts = reviewed_faces_export(directory=directory, size=size)
        exported = counts["train"] + counts["val"] + counts["test"]
        self.stdout.write(
            f"Exported {exported} reviewed faces to {directory} "
            f"(train {counts['train']}, val {counts['val']}, test {counts['test']})."
        )
        if counts["skipped"]:
            self.stdout.write(f"Skipped {counts['skipped']} whose photo is gone or unreadable.")
