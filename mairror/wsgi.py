"""WSGI entry point, for tools that want one (``manage.py runserver``). Production serves ``mairror.asgi``:
under WSGI a client waiting on ``?wait=`` holds a server thread. Never imports TensorFlow: the models live
in the workers."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mairror.settings")

application = get_wsgi_application()
