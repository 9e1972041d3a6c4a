"""WSGI entry point (gunicorn ``mairror.wsgi``). Never imports TensorFlow: the models live in the workers."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mairror.settings")

application = get_wsgi_application()
