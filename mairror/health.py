"""``/healthz``: the web process is alive, and whether an ml worker is ready to take a photo."""

import redis
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from apps.faces.heartbeats import ml_workers_ready


@require_GET
def healthz(request):
    """Liveness for load balancers and the devstack runner, touching no database and needing no key;
    ``ml_workers``: the ml worker processes warmed up and beating (0: a photo sent now waits for one).

    Always 200 while this process answers, whatever Redis and the workers do: a load balancer that took
    the web out, or a supervisor that restarted it, because they are away would take the pages and the
    finished results down too, and restarting the web brings neither back. With Redis down or not
    answering within half a second it says ``"broker": "unavailable"`` and ``ml_workers`` is null
    (unknown, not 0). ``status`` stays "ok" for the probes that read only it.
    """
    try:
        ml_workers = ml_workers_ready()
    except (redis.RedisError, OSError):
        return JsonResponse({"status": "ok", "web": "ok", "broker": "unavailable", "ml_workers": None})
    return JsonResponse({"status": "ok", "web": "ok", "broker": "ok", "ml_workers": ml_workers})
