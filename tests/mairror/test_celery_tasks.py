"""Every task has a stable name and time limits: routes and beat entries name tasks, not modules."""

from fnmatch import fnmatch

from django.conf import settings

from mairror import celery_app


def our_tasks() -> dict:
    celery_app.loader.import_default_modules()
    return {name: task for name, task in celery_app.tasks.items() if task.__module__.startswith("apps.")}


def test_every_task_is_named_after_its_service_not_its_module():
    tasks = our_tasks()
    assert {"faces_detect", "faces_estimate", "uploads_requeue_stuck", "uploads_delete_expired"} <= set(tasks)
    for name, task in tasks.items():
        assert name == task.run.__name__, f"{task.__module__}.{task.run.__name__} is named {name!r}"
        assert "." not in name


def test_routes_and_beat_entries_name_registered_tasks():
    names = set(our_tasks())
    for pattern in settings.CELERY_TASK_ROUTES:
        assert any(fnmatch(name, pattern) for name in names), pattern
    assert {name for name in names if fnmatch(name, "telegram_*")} == {
        "telegram_update_handle",
        "telegram_result_send",
        "telegram_updates_delete_expired",
    }
    assert celery_app.amqp.router.route({}, "faces_detect")["queue"].name == "ml"
    assert celery_app.amqp.router.route({}, "faces_estimate")["queue"].name == "ml"
    assert celery_app.amqp.router.route({}, "model_candidate_train")["queue"].name == "ml"
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        assert entry["task"] in names


def test_every_task_has_a_soft_and_a_hard_time_limit_under_the_visibility_timeout():
    """Under it unless acknowledged at start: one acknowledged when done would be handed to a second worker."""
    visibility_timeout = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    for name, task in our_tasks().items():
        soft = task.soft_time_limit or celery_app.conf.task_soft_time_limit
        hard = task.time_limit or celery_app.conf.task_time_limit
        assert soft and hard and soft < hard, name
        assert hard < visibility_timeout or not task.acks_late, name
    assert [name for name, task in our_tasks().items() if not task.acks_late] == ["model_candidate_train"]
    detection = our_tasks()["faces_detect"]
    assert (detection.soft_time_limit, detection.time_limit) == (
        settings.DETECTION_SOFT_TIME_LIMIT,
        settings.DETECTION_TIME_LIMIT,
    )
