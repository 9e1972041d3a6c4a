"""The reviewers' and admins' view of uploads, faces and reviews.

Everything here is read-only: estimates are never changed, a reviewer's verdict is added
beside them through the review queue. Admins (superusers) may also delete uploads, which
removes the photo, its face documents and rows, as the API's delete does. The "Reviewers"
group (see migration 0003) may view everything and review, nothing else, except keeping
uploads for training past the retention period (a review keeps its upload too) or no longer.
"""

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.cache import patch_cache_control
from django.utils.html import format_html

from apps.faces.selectors import FacesUnavailable, face_crop_png
from apps.predictions.charts import bar_chart
from apps.predictions.models import MAX_AGE, EstimateReview, FaceEstimate, ModelVersion, TrainingRun
from apps.predictions.selectors import (
    face_estimates_with_confidence,
    model_version_active,
    model_version_comparison,
    model_version_previous,
    model_version_promotion_refusals,
    review_agreement_by_model_version,
    review_progress,
    review_queue,
    uploads_per_day,
)
from apps.predictions.services import (
    PromotionRefused,
    TrainingRefused,
    estimate_review_create,
    model_version_promote,
    model_version_rollback,
    training_defaults,
    training_run_request,
    upload_erase,
    uploads_keep_for_training,
)
from apps.uploads.models import Upload
from apps.uploads.selectors import upload_read_display_jpeg

REVIEW_PERMISSION = "predictions.review_estimates"
REVIEW_PAGE_SIZE = 10
DASHBOARD_DAYS = 30
IMAGE_MAX_AGE = 3600
# Predicted-age bands of the age filter: (label, lowest, below).
AGE_BANDS = (("0-12", 0, 13), ("13-19", 13, 20), ("20-39", 20, 40), ("40-59", 40, 60), ("60+", 60, None))
# Bands of the confidence filter: (key, label, lowest, below); see face_estimates_with_confidence.
CONFIDENCE_BANDS = (
    ("low", "low (under 0.4)", 0.0, 0.4),
    ("medium", "medium (0.4 to 0.7)", 0.4, 0.7),
    ("high", "high (0.7 and over)", 0.7, None),
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Nobody adds or edits these by hand: the pipeline writes uploads and estimates, the queue writes reviews."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class KeepForTrainingActions:
    """The actions "Keep for training" and "Stop keeping", for reviewers; ``uploads_of`` maps the selection
    to its uploads."""

    actions = ["keep_for_training", "stop_keeping"]

    def uploads_of(self, queryset):
        raise NotImplementedError

    def has_review_permission(self, request) -> bool:
        return request.user.has_perm(REVIEW_PERMISSION)

    @admin.action(description="Keep for training (past the retention period)", permissions=["review"])
    def keep_for_training(self, request, queryset):
        count = uploads_keep_for_training(uploads=self.uploads_of(queryset), keep=True)
        self.message_user(request, f"{count} uploads are kept for training.", messages.SUCCESS)

    @admin.action(description="Stop keeping for training (the retention period applies)", permissions=["review"])
    def stop_keeping(self, request, queryset):
        count = uploads_keep_for_training(uploads=self.uploads_of(queryset), keep=False)
        self.message_user(request, f"{count} uploads are no longer kept; the retention period applies.")


def _image_response(data: bytes, content_type: str) -> HttpResponse:
    response = HttpResponse(data, content_type=content_type)
    patch_cache_control(response, private=True, max_age=IMAGE_MAX_AGE)
    return response


def _crop_thumbnail(face: FaceEstimate, size: int = 64):
    url = reverse("admin:predictions_faceestimate_crop", args=[face.pk])
    return format_html(
        '<img src="{}" width="{}" height="{}" alt="face {}" class="face-crop">', url, size, size, face.pk
    )


def _photo_with_boxes(upload: Upload, faces) -> str:
    return render_to_string(
        "predictions/photo_with_boxes.html",
        {"upload": upload, "faces": faces, "photo_url": reverse("admin:uploads_upload_photo", args=[upload.pk])},
    )


class FaceEstimateInline(admin.TabularInline):
    model = FaceEstimate
    fields = ["crop", "number", "short_label", "gender_percent", "detection", "model_version", "review_link"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    @admin.display(description="face")
    def crop(self, face):
        return _crop_thumbnail(face)

    @admin.display(description="P(gender)")
    def gender_percent(self, face):
        return f"{face.gender_probability:.0%}"

    @admin.display(description="detection confidence")
    def detection(self, face):
        return f"{face.detection_confidence:.3f}"

    @admin.display(description="review")
    def review_link(self, face):
        return format_html('<a href="{}?face={}">review</a>', reverse("admin:predictions_faceestimate_review"), face.pk)

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Upload)
class UploadAdmin(KeepForTrainingActions, ReadOnlyAdmin):
    """Lives here, not in the uploads app: its page shows the faces, and deleting must remove them everywhere."""

    list_display = ["id", "created_at", "channel", "owner", "status", "face_count", "width", "height"]
    list_display += ["kept_for_training"]
    list_filter = ["status", "channel", "kept_for_training", "faces__model_version"]
    search_fields = ["id", "owner__name", "failure_reason"]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]  # what came in last is what a reviewer looks for
    fields = ["photo", "id", "status", "failure_reason", "channel", "owner", "width", "height", "kept_for_training"]
    fields += ["created_at", "started_at", "finished_at", "timings"]
    readonly_fields = fields
    inlines = [FaceEstimateInline]

    class Media:
        css = {"all": ["predictions/faces.css", "predictions/admin.css"]}

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("owner").annotate(face_count=Count("faces"))

    @admin.display(description="faces", ordering="face_count")
    def face_count(self, upload):
        return upload.face_count

    @admin.display(description="photo")
    def photo(self, upload):
        return _photo_with_boxes(upload, list(upload.faces.all()))

    def uploads_of(self, queryset):
        return Upload.objects.filter(pk__in=queryset.values("pk"))

    def get_deleted_objects(self, objs, request):
        """Faces and their reviews go with their photo: the permission to delete uploads covers them."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        derived = {FaceEstimate._meta.verbose_name, EstimateReview._meta.verbose_name}
        return deleted, counts, perms_needed - derived, protected

    def delete_model(self, request, obj):
        upload_erase(upload=obj)

    def delete_queryset(self, request, queryset):
        for upload in queryset:
            upload_erase(upload=upload)

    def get_urls(self):
        urls = [
            path("<uuid:upload_id>/photo.jpg", self.admin_site.admin_view(self.photo_view), name="uploads_upload_photo")
        ]
        return urls + super().get_urls()

    def photo_view(self, request, upload_id):
        """The photo, upright, for whoever may view uploads here."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        upload = get_object_or_404(Upload, pk=upload_id)
        try:
            return _image_response(upload_read_display_jpeg(upload=upload), "image/jpeg")
        except OSError as error:
            raise Http404("The photo cannot be read.") from error


class _RangeFilter(admin.SimpleListFilter):
    """Filters one numeric field by half-open bands ``(key, label, lowest, below)``; ``below`` None: no top."""

    field: str
    bands: tuple

    def lookups(self, request, model_admin):
        return [(key, label) for key, label, _, _ in self.bands]

    def queryset(self, request, queryset):
        for key, _, lowest, below in self.bands:
            if self.value() == key:
                queryset = queryset.filter(**{f"{self.field}__gte": lowest})
                return queryset.filter(**{f"{self.field}__lt": below}) if below is not None else queryset
        return queryset


class AgeBandFilter(_RangeFilter):
    title = "predicted age"
    parameter_name = "age_band"
    field = "age_value"
    bands = tuple((label, label, lowest, below) for label, lowest, below in AGE_BANDS)


class ConfidenceFilter(_RangeFilter):
    title = "confidence"
    parameter_name = "confidence"
    field = "confidence"
    bands = CONFIDENCE_BANDS


class ReviewedFilter(admin.SimpleListFilter):
    title = "reviewed"
    parameter_name = "reviewed"

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(reviewed=self.value() == "yes")
        return queryset


class ReviewForm(forms.Form):
    face = forms.IntegerField()
    verdict = forms.ChoiceField(choices=[("confirm", "confirm"), ("correct", "correct")])
    age = forms.IntegerField(min_value=0, max_value=MAX_AGE, required=False)
    gender = forms.ChoiceField(choices=FaceEstimate.Gender.choices, required=False)

    def clean(self):
        data = super().clean()
        if data.get("verdict") == "correct" and (data.get("age") is None or not data.get("gender")):
            raise ValidationError("A correction needs an age and a gender.")
        return data


class EstimateReviewInline(admin.TabularInline):
    model = EstimateReview
    fields = ["reviewed_at", "reviewer", "confirmed", "age", "gender"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(FaceEstimate)
class FaceEstimateAdmin(KeepForTrainingActions, ReadOnlyAdmin):
    list_display = ["crop", "short_label", "gender_percent", "confidence_score", "reviewed_mark", "model_version"]
    list_display += ["upload_link", "number", "created_at"]
    list_display_links = ["crop", "short_label"]
    list_filter = [
        "upload__status",
        "upload__channel",
        "gender_label",
        AgeBandFilter,
        ConfidenceFilter,
        ReviewedFilter,
        "model_version",
    ]
    search_fields = ["upload__id", "mongo_face_id", "model_version"]
    fields = ["crop_large", "photo", "upload", "number", "short_label", "age_value", "age_low", "age_high"]
    fields += ["age_level", "gender_label", "gender_probability", "detection_confidence", "model_version"]
    fields += ["box_x", "box_y", "box_width", "box_height", "landmarks", "mongo_face_id", "created_at"]
    readonly_fields = fields
    inlines = [EstimateReviewInline]

    class Media:
        css = {"all": ["predictions/faces.css", "predictions/admin.css"]}

    def get_queryset(self, request):
        return face_estimates_with_confidence().select_related("upload")

    def has_delete_permission(self, request, obj=None):
        return False  # a face goes with its photo: delete the upload

    def uploads_of(self, queryset):
        return Upload.objects.filter(pk__in=queryset.values("upload_id"))

    @admin.display(description="face")
    def crop(self, face):
        return _crop_thumbnail(face)

    @admin.display(description="face")
    def crop_large(self, face):
        return _crop_thumbnail(face, size=160)

    @admin.display(description="photo")
    def photo(self, face):
        return _photo_with_boxes(face.upload, [face])

    @admin.display(description="P(gender)", ordering="gender_probability")
    def gender_percent(self, face):
        return f"{face.gender_probability:.0%}"

    @admin.display(description="confidence", ordering="confidence")
    def confidence_score(self, face):
        return f"{face.confidence:.2f}"

    @admin.display(description="reviewed", boolean=True, ordering="reviewed")
    def reviewed_mark(self, face):
        return face.reviewed

    @admin.display(description="upload", ordering="upload__created_at")
    def upload_link(self, face):
        url = reverse("admin:uploads_upload_change", args=[face.upload_id])
        return format_html('<a href="{}">{}</a>', url, str(face.upload_id)[:8])

    def get_urls(self):
        wrap = self.admin_site.admin_view
        urls = [
            path("review/", wrap(self.review_view), name="predictions_faceestimate_review"),
            path("dashboard/", wrap(self.dashboard_view), name="predictions_faceestimate_dashboard"),
            path("<int:face_id>/crop.png", wrap(self.crop_view), name="predictions_faceestimate_crop"),
        ]
        return urls + super().get_urls()

    def crop_view(self, request, face_id):
        if not self.has_view_permission(request):
            raise PermissionDenied
        face = get_object_or_404(FaceEstimate, pk=face_id)
        try:
            data = face_crop_png(upload_id=face.upload_id, face_index=face.face_index)
        except FacesUnavailable as error:
            return HttpResponse(error.message, status=503, content_type="text/plain; charset=utf-8")
        if data is None:
            raise Http404("The face crop is gone.")
        return _image_response(data, "image/png")

    def review_view(self, request):
        """The review queue, least confident first: one form per face, one click to confirm or correct it."""
        if not request.user.has_perm(REVIEW_PERMISSION):
            raise PermissionDenied
        if request.method == "POST":
            return self._review(request)
        if "face" in request.GET:  # one face, reviewed or not (a second review adds to the first)
            face_id = request.GET["face"]
            if not face_id.isdigit():
                raise Http404("No such face.")
            faces = face_estimates_with_confidence().filter(pk=int(face_id)).select_related("upload")
        else:
            faces = review_queue()
        page = Paginator(faces, REVIEW_PAGE_SIZE).get_page(request.GET.get("page"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Review queue",
            "opts": self.model._meta,
            "page": page,
            "remaining": page.paginator.count,
            "max_age": MAX_AGE,
            "genders": FaceEstimate.Gender.choices,
        }
        return TemplateResponse(request, "admin/predictions/review_queue.html", context)

    def _review(self, request):
        form = ReviewForm(request.POST)
        back = request.get_full_path()
        if not form.is_valid():
            messages.error(request, " ".join(e for errors in form.errors.values() for e in errors))
            return redirect(back)
        data = form.cleaned_data
        face = get_object_or_404(FaceEstimate, pk=data["face"])
        correction = {"age": data["age"], "gender": data["gender"]} if data["verdict"] == "correct" else {}
        review = estimate_review_create(estimate=face, reviewer=request.user, **correction)
        verdict = "confirmed" if review.confirmed else f"corrected to {review.gender}, {review.age}"
        messages.success(request, f"Face {face.pk} {verdict}.")
        return redirect(back)

    def dashboard_view(self, request):
        """The live numbers (``live_numbers`` tag), traffic, review progress, and how the model agrees with
        reviewers, per model version."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        days = uploads_per_day(days=DASHBOARD_DAYS)
        agreement = review_agreement_by_model_version()
        daily = [
            (
                f"{d['day']:%d %b}",
                d["photos"],
                f"{d['day']:%Y-%m-%d}: {d['photos']} photos, {d['faces']} faces, {d['failed']} failed",
            )
            for d in days
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": "Dashboard",
            "opts": self.model._meta,
            "days": days,
            "progress": review_progress(),
            "agreement": agreement,
            "daily_chart": bar_chart(daily, label_every=7),
            "mae_chart": bar_chart(
                [
                    (a["model_version"], a["age_mae"], f"{a['model_version']}: {a['age_mae']:.1f} years, n={a['n']}")
                    for a in agreement
                ],
                bar_width=80,
                gap=24,
            ),
            "accuracy_chart": bar_chart(
                [
                    (
                        a["model_version"],
                        a["gender_accuracy"],
                        f"{a['model_version']}: {a['gender_accuracy']:.0%}, n={a['n']}",
                    )
                    for a in agreement
                ],
                bar_width=80,
                gap=24,
                maximum=1,
                scale_format="{:.0%}",
            ),
        }
        return TemplateResponse(request, "admin/predictions/dashboard.html", context)


@admin.register(EstimateReview)
class EstimateReviewAdmin(ReadOnlyAdmin):
    list_display = ["reviewed_at", "reviewer", "face", "predicted", "confirmed", "gender", "age"]
    list_filter = ["confirmed", "gender", "reviewer", "estimate__model_version"]
    search_fields = ["reviewer__username", "estimate__upload__id"]
    date_hierarchy = "reviewed_at"
    list_select_related = ["reviewer", "estimate"]

    class Media:
        css = {"all": ["predictions/faces.css"]}

    @admin.display(description="face")
    def face(self, review):
        return _crop_thumbnail(review.estimate, size=48)

    @admin.display(description="predicted")
    def predicted(self, review):
        return review.estimate.short_label


# --- the model registry: versions side by side, promotion, roll back; training runs ---------------------

# The figures shown side by side, each set those it has: (key in ml.evaluate_all's summary row, label, unit).
COMPARED_FIGURES = (
    ("age_mae", "age MAE", "years"),
    ("age_range_distance", "distance to the age group", "years"),
    ("age_in_range", "age inside its group", "%"),
    ("age_bound_inside", "age inside the set's stated bound", "%"),
    ("gender_accuracy", "gender accuracy", "%"),
    ("interval_coverage", "80% interval coverage", "%"),
)


def _figure(value, unit: str) -> str:
    if value is None:
        return "-"
    return f"{value:.1%}" if unit == "%" else f"{value:.2f}"


def _difference(ours, theirs, unit: str) -> str:
    if ours is None or theirs is None:
        return ""
    return f"{ours - theirs:+.1%}" if unit == "%" else f"{ours - theirs:+.2f}"


def _comparison_rows(comparison) -> list[dict]:
    """One row per set and figure the set has, for the side-by-side table."""
    rows = []
    for row in comparison:
        for key, label, unit in COMPARED_FIGURES:
            ours, theirs = row.candidate.get(key), row.active.get(key)
            if ours is None and theirs is None:
                continue
            rows.append(
                {
                    "set": row.name,
                    "photos": row.candidate.get("images"),
                    "figure": label,
                    "candidate": _figure(ours, unit),
                    "active": _figure(theirs, unit),
                    "difference": _difference(ours, theirs, unit),
                    "worse": key in row.worse,
                }
            )
    return rows


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyAdmin):
    """Model versions, and the decision which one serves: a superuser promotes a candidate after comparing it with
    the active one, set by set, as one run measured both; one worse on any set by more than the margins is refused
    unless forced (a separate button, logged). Roll back brings back the version the active one replaced."""

    list_display = ["version", "state", "image_size", "parent", "created_at", "promoted_at", "promoted_by"]
    list_display += ["promotion_forced"]
    list_filter = ["state", "promotion_forced"]
    search_fields = ["version"]
    fields = ["version", "state", "image_size", "parent", "weights_prefix", "training_data", "created_at"]
    fields += ["promoted_at", "promoted_by", "promotion_forced", "retired_at"]
    readonly_fields = fields

    def has_delete_permission(self, request, obj=None):
        return False  # faces keep the version that estimated them

    def get_urls(self):
        wrap = self.admin_site.admin_view
        urls = [
            path("<int:pk>/promote/", wrap(self.promote_view), name="predictions_modelversion_promote"),
            path("rollback/", wrap(self.rollback_view), name="predictions_modelversion_rollback"),
        ]
        return urls + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        version = get_object_or_404(ModelVersion, pk=object_id)
        active = model_version_active()
        other = version.parent if version.state == ModelVersion.State.ACTIVE else active
        comparison = model_version_comparison(candidate=version, active=other)
        context = {
            "other": other,
            "comparison_rows": _comparison_rows(comparison or []),
            "refusals": model_version_promotion_refusals(candidate=version, active=active),
            "previous": model_version_previous() if version.state == ModelVersion.State.ACTIVE else None,
            "can_promote": request.user.is_superuser,
            "margins": (settings.MODEL_PROMOTION_MARGIN_YEARS, settings.MODEL_PROMOTION_MARGIN_GENDER),
        }
        return super().change_view(request, object_id, form_url, {**context, **(extra_context or {})})

    def promote_view(self, request, pk):
        """POST: promote this version ("force" in the form: whatever the comparison says)."""
        if request.method != "POST" or not request.user.is_superuser:
            raise PermissionDenied
        version = get_object_or_404(ModelVersion, pk=pk)
        force = "force" in request.POST
        replaced = model_version_active()
        try:
            promoted = model_version_promote(model_version=version, user=request.user, force=force)
        except PromotionRefused as error:
            messages.error(
                request, f"Not promoted: {version.version} measured worse, " + "; ".join(error.reasons) + "."
            )
        else:
            note = f"Forced promotion over {replaced.version}" if promoted.promotion_forced else "Promoted"
            if replaced is not None and not promoted.promotion_forced:
                note += f", replacing {replaced.version}"
            self.log_change(request, promoted, note)
            messages.success(request, f"Promoted {promoted.version}: the workers switch to it between two tasks.")
        return redirect("admin:predictions_modelversion_change", pk)

    def rollback_view(self, request):
        """POST: bring back the version the active one replaced."""
        if request.method != "POST" or not request.user.is_superuser:
            raise PermissionDenied
        replaced = model_version_active()
        try:
            restored = model_version_rollback(user=request.user)
        except PromotionRefused as error:
            messages.error(request, "; ".join(error.reasons) + ".")
            return redirect("admin:predictions_modelversion_changelist")
        self.log_change(request, restored, f"Rolled back to it from {replaced.version if replaced else 'none'}")
        messages.success(request, f"Rolled back: {restored.version} is active again.")
        return redirect("admin:predictions_modelversion_change", restored.pk)


@admin.register(TrainingRun)
class TrainingRunAdmin(ReadOnlyAdmin):
    """Training runs (``train_from_reviews``), their progress as they go; a superuser starts one from the list."""

    list_display = ["id", "state", "progress_percent", "stage", "base", "candidate", "requested_by", "created_at"]
    list_display += ["finished_at"]
    list_filter = ["state"]
    fields = ["state", "progress_bar", "stage", "base", "candidate", "parameters", "error", "log", "requested_by"]
    fields += ["created_at", "started_at", "finished_at"]
    readonly_fields = fields

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="progress", ordering="progress")
    def progress_percent(self, run):
        return f"{run.progress:.0%}"

    @admin.display(description="progress")
    def progress_bar(self, run):
        return format_html('<progress max="1" value="{}"></progress> {}', run.progress, f"{run.progress:.0%}")

    @admin.display(description="last log lines")
    def log(self, run):
        return format_html("<pre>{}</pre>", run.log_tail)

    def get_urls(self):
        urls = [path("train/", self.admin_site.admin_view(self.train_view), name="predictions_trainingrun_train")]
        return urls + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        context = {"can_train": request.user.is_superuser, "training_defaults": training_defaults()}
        return super().changelist_view(request, {**context, **(extra_context or {})})

    def train_view(self, request):
        """POST: queue a training run with the default parameters (train_from_reviews takes others)."""
        if request.method != "POST" or not request.user.is_superuser:
            raise PermissionDenied
        try:
            run = training_run_request(user=request.user)
        except TrainingRefused as error:
            messages.error(request, str(error))
            return redirect("admin:predictions_trainingrun_changelist")
        self.log_addition(request, run, "Queued from the admin")
        messages.success(request, f"Training run {run.pk} queued on the ml queue.")
        return redirect("admin:predictions_trainingrun_change", run.pk)
