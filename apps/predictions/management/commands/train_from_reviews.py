import time

from django.core.management.base import BaseCommand, CommandError

from apps.predictions.models import TrainingRun
from apps.predictions.services import TrainingRefused, training_defaults, training_run_request

POLL_SECONDS = 5


class Command(BaseCommand):
    help = (
        "Queue a fine-tune of the active model on the reviewed faces (on the ml queue): the candidate is measured "
        "against the active model on the data sets' test splits and the reviewed faces' own, and registered; "
        "promote it in the admin (Model versions)."
    )

    def add_arguments(self, parser):
        defaults = training_defaults()
        parser.add_argument(
            "--replay-size",
            type=int,
            default=defaults["replay_size"],
            help="faces of the shipped training data replayed beside the reviewed (%(default)s)",
        )
        parser.add_argument("--epochs", type=int, default=defaults["epochs"])
        parser.add_argument("--epoch-size", type=int, default=defaults["epoch_size"], help="faces per epoch")
        parser.add_argument("--learning-rate", type=float, default=defaults["learning_rate"])
        parser.add_argument(
            "--reviewed-share",
            type=float,
            default=defaults["reviewed_share"],
            help="share of reviewed faces in every batch (%(default)s)",
        )
        parser.add_argument("--train-trunk", action="store_true", help="train the whole network, not its heads only")
        parser.add_argument(
            "--test-limit",
            type=int,
            default=defaults["test_limit"],
            help="photos of each data set's test split to measure on, 0: all (%(default)s)",
        )
        parser.add_argument("--wait", action="store_true", help="wait for the run to end, showing its progress")

    def handle(self, *args, wait: bool, **options):
        parameters = {name: options[name] for name in training_defaults()}
        try:
            run = training_run_request(**parameters)
        except TrainingRefused as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"Queued training run {run.pk}: {parameters}")
        if not wait:
            return
        stage = None
        while run.state in (TrainingRun.State.QUEUED, TrainingRun.State.RUNNING):
            time.sleep(POLL_SECONDS)
            run.refresh_from_db()
            if run.stage != stage:
                stage = run.stage
                self.stdout.write(f"{run.progress:4.0%} {stage}")
        if run.state == TrainingRun.State.FAILED:
            raise CommandError(f"Training run {run.pk} failed: {run.error}")
        self.stdout.write(f"Candidate {run.candidate.version} registered; compare and promote it in the admin.")
