# One image for the web server and the Celery workers (compose picks the command).
# GPU worker nodes: docker build --build-arg TF_PACKAGE='tensorflow[and-cuda]==2.21.*' -t mairror:gpu .
FROM python:3.11-slim

ARG TF_PACKAGE="tensorflow-cpu==2.21.*"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app

WORKDIR /app

# Dependencies get their own layer, rebuilt only when pyproject.toml changes: install the project
# from empty stand-ins for its packages, then remove them. The real code runs from /app (PYTHONPATH)
# because the settings find templates/, static/ and ml/weights/ next to it.
COPY pyproject.toml ./
RUN mkdir ml mairror apps \
    && touch ml/__init__.py mairror/__init__.py apps/__init__.py \
    && pip install . \
    && pip uninstall -y mairror \
    && case "$TF_PACKAGE" in \
        tensorflow-cpu*) ;; \
        *) pip uninstall -y tensorflow-cpu && pip install "$TF_PACKAGE" ;; \
    esac \
    && rm -rf ml mairror apps build ./*.egg-info

COPY . .

# Static files are baked in (WhiteNoise serves them). The app writes only to var/ and its home
# (Keras and Matplotlib caches).
RUN DJANGO_SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput \
    && useradd --system --uid 10001 --create-home mairror \
    && mkdir -p var \
    && chown -R mairror:mairror var
USER mairror

ENV PORT=8000
EXPOSE 8000
# ASGI under gunicorn's uvicorn workers: clients waiting on ?wait= or a result page's event stream are
# coroutines, not threads (README, "How it runs"). Each open wait is a socket: raise the container's
# open-files limit (docker-compose.yml sets it) for thousands of them.
# --reuse-port: a listening socket per worker, so the kernel spreads a burst of connections over all of them.
CMD ["sh", "-c", "exec gunicorn mairror.asgi:application --worker-class uvicorn_worker.UvicornWorker --reuse-port --bind 0.0.0.0:${PORT} --workers ${WEB_CONCURRENCY:-2} --access-logfile -"]
