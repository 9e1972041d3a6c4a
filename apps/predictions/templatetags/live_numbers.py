"""The admin's live numbers (queue depths, latency, failures, model version), on its index and dashboard."""

import datetime

from django import template
from django.utils import timezone

from apps.predictions.selectors import live_numbers as live_numbers_get

register = template.Library()

# "Now", for latency and failures: long enough for a few photos on a quiet site, short enough to show a change.
LIVE_WINDOW = datetime.timedelta(hours=1)


@register.inclusion_tag("admin/predictions/live_numbers.html")
def live_numbers() -> dict:
    live = live_numbers_get(since=timezone.now() - LIVE_WINDOW)
    return {
        "live": live,
        "window_minutes": int(LIVE_WINDOW.total_seconds() // 60),
        "failure_percent": None if live.failure_rate is None else 100 * live.failure_rate,
    }
