"""What a web process does once, when it starts, instead of in the first request it serves.

The first photo after a start took twice as long as the tenth even with the models warm in the
worker (bench/first_photo.py): the web process's first POST paid for Django building its URL
resolver (importing every view module), Pillow importing its format plugins on the first
``Image.open``, the task modules' import, and the Celery producer's first connection to the broker.
Each web worker process pays once, here, when its server starts it: at the ASGI lifespan's startup
(``WarmUpAtStartup``), which uvicorn sends before it accepts a connection. Not at import: a process
that only imports ``mairror.asgi`` (a test, a management command) must not connect anywhere.

Nothing here may keep a process from starting: a broker that is down is logged and left to the first
request, which then fails or retries as it always did.
"""

import asyncio
import logging
import time

from django.urls import get_resolver
from PIL import Image

logger = logging.getLogger(__name__)


def web_process_warm_up() -> float:
    """Do the first request's one-off work now; returns the seconds it took."""
    started = time.monotonic()
    get_resolver().url_patterns  # noqa: B018 - imports every URLconf and view module
    Image.init()
    from apps.faces import tasks as faces_tasks  # noqa: F401 - what an upload's first queueing imports
    from apps.predictions import tasks  # noqa: F401
    from mairror.celery import app

    try:
        with app.producer_or_acquire() as producer:
            producer.connection.ensure_connection(max_retries=0)  # one try: a refused connection fails at once
    except Exception as error:  # noqa: BLE001 - any broker failure: the first request will see it too
        logger.warning("the broker could not be reached at start (%s); the first upload connects", error)
    seconds = time.monotonic() - started
    logger.info("web process warmed in %.0f ms", seconds * 1000)
    return seconds


class WarmUpAtStartup:
    """An ASGI wrapper that answers the server's lifespan messages: warmed up at startup (in a thread: it
    blocks), nothing to do at shutdown. Django's ASGI handler takes no lifespan scope of its own."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "lifespan":
            return await self.app(scope, receive, send)
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await asyncio.get_running_loop().run_in_executor(None, web_process_warm_up)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
