"""Reads of predictions: an upload with its faces as its owner may see it, the review queue, review statistics,
the queues' depths and the live numbers of the admin's dashboard, and the model registry."""

import datetime
import math
from dataclasses import dataclass

import kombu.exceptions
import redis
from django.conf import settings
from django.db.models import (
    Avg,
    Case,
    Count,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    FloatField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Abs, Greatest, Least, TruncDate
from django.utils import timezone
from rest_framework_api_key.models import APIKey

from apps.predictions.models import EstimateReview, FaceEstimate, ModelVersion
from apps.uploads.models import Upload

ML_QUEUE = "ml"  # CELERY_TASK_ROUTES sends both pipeline steps there
# What reading a queue's length raises when the broker is unreachable.
BROKER_ERRORS = (kombu.exceptions.OperationalError, redis.RedisError, OSError)
# An age interval this wide (in years) says nothing: its confidence is 0.
UNINFORMATIVE_AGE_RANGE = 40.0
AGE_ERROR_NAMES = {"age_mae": "age MAE", "age_range_distance": "distance to the age group"}


def prediction_list(*, owner: APIKey) -> QuerySet[Upload]:
    return Upload.objects.filter(owner=owner).prefetch_related("faces").order_by("-created_at", "-pk")


def prediction_get(*, owner: APIKey, upload_id) -> Upload | None:
    return prediction_list(owner=owner).filter(pk=upload_id).first()


def predictions_by_id(*, owner: APIKey, upload_ids: list) -> dict[str, Upload]:
    """Several of an owner's predictions in one query (and one for their faces), by upload id."""
    return {str(upload.pk): upload for upload in prediction_list(owner=owner).filter(pk__in=upload_ids)}


def face_estimates_with_confidence() -> QuerySet[FaceEstimate]:
    """Faces annotated with ``confidence`` (0..1, the weaker of gender and age) and ``reviewed``.

    Gender confidence is 0 for a coin toss and 1 for certainty; age confidence falls from 1 for
    a point estimate to 0 for an interval of UNINFORMATIVE_AGE_RANGE years or more.
    """
    gender_confidence = (F("gender_probability") - Value(0.5)) * Value(2.0)
    age_confidence = Value(1.0) - (F("age_high") - F("age_low")) / Value(UNINFORMATIVE_AGE_RANGE)
    return FaceEstimate.objects.annotate(
        confidence=Greatest(Least(gender_confidence, age_confidence), Value(0.0), output_field=FloatField()),
        reviewed=Exists(EstimateReview.objects.filter(estimate=OuterRef("pk"))),
    )


def review_queue() -> QuerySet[FaceEstimate]:
    """Faces nobody has reviewed yet, least confident first: where a person's verdict teaches the model most."""
    return (
        face_estimates_with_confidence()
        .filter(reviewed=False, upload__status=Upload.Status.DONE)
        .select_related("upload")
        .order_by("confidence", "created_at", "pk")
    )


def reviewed_faces() -> QuerySet[FaceEstimate]:
    """Reviewed faces, each with its newest review's verdict as ``true_age`` and ``true_gender``."""
    latest = EstimateReview.objects.filter(estimate=OuterRef("pk")).order_by("-reviewed_at", "-pk")
    return FaceEstimate.objects.annotate(
        true_age=Subquery(latest.values("age")[:1]), true_gender=Subquery(latest.values("gender")[:1])
    ).filter(true_age__isnull=False)


def review_agreement_by_model_version() -> list[dict]:
    """Per model version, how the predictions compare with reviewers' verdicts.

    ``age_mae`` in years, ``gender_accuracy`` and ``interval_coverage`` (the share of true ages
    inside the predicted interval, to hold against the nominal ``interval_level``) from 0 to 1.
    """
    one, zero = Value(1.0), Value(0.0)
    faces = reviewed_faces().annotate(
        age_error=Abs(F("age_value") - F("true_age")),
        gender_agrees=Case(When(gender_label=F("true_gender"), then=one), default=zero, output_field=FloatField()),
        covered=Case(
            When(age_low__lte=F("true_age"), age_high__gte=F("true_age"), then=one),
            default=zero,
            output_field=FloatField(),
        ),
    )
    return list(
        faces.values("model_version")
        .annotate(
            n=Count("pk"),
            age_mae=Avg("age_error"),
            gender_accuracy=Avg("gender_agrees"),
            interval_coverage=Avg("covered"),
            interval_level=Avg("age_level"),
        )
        .order_by("model_version")
    )


def review_progress() -> dict:
    """How many faces there are, and how many of them a reviewer has seen."""
    counts = FaceEstimate.objects.aggregate(
        faces=Count("pk", distinct=True), reviewed=Count("pk", distinct=True, filter=Q(reviews__isnull=False))
    )
    counts["share"] = counts["reviewed"] / counts["faces"] if counts["faces"] else None
    return counts


def uploads_per_day(*, days: int = 30) -> list[dict]:
    """Photos, faces and failures per day (UTC) over the last ``days`` days, oldest first, empty days included."""
    today = timezone.now().date()
    first = today - datetime.timedelta(days=days - 1)
    rows = (
        Upload.objects.filter(created_at__date__gte=first)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(
            photos=Count("pk", distinct=True),
            faces=Count("faces", distinct=True),
            failed=Count("pk", filter=Q(status=Upload.Status.FAILED), distinct=True),
        )
    )
    by_day = {row["day"]: row for row in rows}
    days_range = (first + datetime.timedelta(days=offset) for offset in range(days))
    return [by_day.get(day, {"day": day, "photos": 0, "faces": 0, "failed": 0}) for day in days_range]


def ml_queue_length() -> int:
    """Messages waiting on the pipeline's ``ml`` queue: the sweeper's sign of a backlog."""
    return queue_length(queue=ML_QUEUE)


def queue_length(*, queue: str) -> int:
    """Messages waiting on a Celery queue (not those a worker holds), read through kombu so that any
    broker answers: Redis sums the queue's priority lists, AMQP reports the queue's ready count.

    A queue that does not exist is empty (Redis deletes an empty list). Raises the broker's connection
    errors (``kombu.exceptions.OperationalError``, redis-py's) when it cannot be reached within the
    broker connection timeout.
    """
    return _queue_lengths([queue])[queue]


def queue_depths() -> dict[str, int]:
    """``queue_length`` of each queue tasks are sent to (the default one and those of CELERY_TASK_ROUTES),
    over one connection: a broker that is down costs one connection timeout, not one per queue."""
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    return _queue_lengths(sorted({settings.CELERY_TASK_DEFAULT_QUEUE, *routed}))


def _queue_lengths(queues: list[str]) -> dict[str, int]:
    from mairror import celery_app

    lengths = {}
    with celery_app.connection_for_write() as connection:
        for queue in queues:
            try:
                lengths[queue] = connection.default_channel.queue_declare(queue=queue, passive=True).message_count
            except connection.channel_errors:
                lengths[queue] = 0
    return lengths


@dataclass(frozen=True)
class LiveNumbers:
    """What an operator looks at first (``live_numbers``). Durations in milliseconds, rates from 0 to 1;
    None where there is nothing to measure (no photo finished) or the broker did not answer."""

    queue_depths: dict[str, int] | None
    finished: int
    failed: int
    failure_rate: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    model_version: str | None  # the registry's active version: what the workers serve
    newest_estimate_version: str | None  # the newest face's; another just after a promotion, until a photo comes


def live_numbers(*, since: datetime.datetime) -> LiveNumbers:
    """Queue depths now, and of the photos finished since ``since``: how many failed, and the 50th and
    95th percentiles (nearest rank) of upload-to-result time of those done; the active model version,
    and the newest estimate's."""
    try:
        depths = queue_depths()
    except BROKER_ERRORS:
        depths = None
    finished = Upload.objects.filter(finished_at__gte=since)
    durations = sorted(
        finished.filter(status=Upload.Status.DONE)
        .annotate(duration=ExpressionWrapper(F("finished_at") - F("created_at"), output_field=DurationField()))
        .values_list("duration", flat=True)
    )
    counts = finished.aggregate(finished=Count("pk"), failed=Count("pk", filter=Q(status=Upload.Status.FAILED)))
    return LiveNumbers(
        queue_depths=depths,
        finished=counts["finished"],
        failed=counts["failed"],
        failure_rate=counts["failed"] / counts["finished"] if counts["finished"] else None,
        latency_p50_ms=_nearest_rank_ms(durations, 0.50),
        latency_p95_ms=_nearest_rank_ms(durations, 0.95),
        model_version=ModelVersion.objects.filter(state=ModelVersion.State.ACTIVE)
        .values_list("version", flat=True)
        .first(),
        newest_estimate_version=FaceEstimate.objects.order_by("-created_at", "-pk")
        .values_list("model_version", flat=True)
        .first(),
    )


def _nearest_rank_ms(durations: list[datetime.timedelta], quantile: float) -> float | None:
    """The smallest duration at or above ``quantile`` of them (sorted), in milliseconds."""
    if not durations:
        return None
    return durations[max(0, math.ceil(quantile * len(durations)) - 1)].total_seconds() * 1000


# --- the model registry ---------------------------------------------------------------------


def model_version_active() -> ModelVersion | None:
    """The version every ml worker serves (within MODEL_VERSION_CHECK_SECONDS of its promotion)."""
    return ModelVersion.objects.filter(state=ModelVersion.State.ACTIVE).first()


def model_version_previous() -> ModelVersion | None:
    """The version the active one replaced, which a roll back brings back: the one retired last."""
    return ModelVersion.objects.filter(state=ModelVersion.State.RETIRED).order_by("-retired_at", "-pk").first()


@dataclass(frozen=True)
class SetComparison:
    """One evaluation set, two versions measured in one run on its same photos (``ml.evaluate_all``'s rows)."""

    name: str
    candidate: dict
    active: dict
    worse: dict[str, str]  # figure: how the candidate is worse in it than the active one, past the margins


def model_version_comparison(*, candidate: ModelVersion, active: ModelVersion | None) -> list[SetComparison] | None:
    """The two versions side by side per evaluation set, or None when no run measured them together: one must be
    the other's parent (a candidate and the version it was fine-tuned from, either way round)."""
    if active is None:
        return None
    if candidate.parent_id == active.pk:
        figures, baseline = candidate.metrics, candidate.baseline_metrics
    elif active.parent_id == candidate.pk:
        figures, baseline = active.baseline_metrics, active.metrics
    else:
        return None
    margins = settings.MODEL_PROMOTION_MARGIN_YEARS, settings.MODEL_PROMOTION_MARGIN_GENDER
    return [
        SetComparison(name, figures[name], baseline[name], _worse(figures[name], baseline[name], *margins))
        for name in figures
        if name in baseline
    ]


def model_version_promotion_refusals(*, candidate: ModelVersion, active: ModelVersion | None) -> list[str]:
    """Why ``candidate`` may not replace ``active`` unless forced; empty when it may."""
    if active is None or candidate.pk == active.pk:
        return []
    comparison = model_version_comparison(candidate=candidate, active=active)
    if not comparison:
        return [f"{candidate.version} and the active {active.version} were never measured on the same photos"]
    return [f"{row.name}: {reason}" for row in comparison for reason in row.worse.values()]


def _worse(candidate: dict, active: dict, margin_years: float, margin_gender: float) -> dict[str, str]:
    """Each figure in which ``candidate`` is worse than ``active`` by more than its margin, and how, in words."""
    worse = {}
    for key, name in AGE_ERROR_NAMES.items():
        ours, theirs = candidate.get(key), active.get(key)
        if ours is not None and theirs is not None and ours - theirs > margin_years:
            worse[key] = f"{name} {ours:.2f} years against {theirs:.2f}"
    ours, theirs = candidate.get("gender_accuracy"), active.get("gender_accuracy")
    if ours is not None and theirs is not None and theirs - ours > margin_gender:
        worse["gender_accuracy"] = f"gender accuracy {ours:.1%} against {theirs:.1%}"
    return worse
