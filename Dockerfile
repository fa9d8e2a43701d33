# One image for every process; the command is chosen at run time:
#   api (default):  gunicorn -c deploy/gunicorn.conf.py wsgi:app
#                   (binds 0.0.0.0: refuses to start without API_TOKENS or API_TOKENS_FILE)
#   worker:         dramatiq tasks --processes 2 --threads 4
#   scheduler:      python -m tasks.scheduler
#   migrations:     flask db create && flask db upgrade
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FLASK_APP=wsgi \
    BIND=0.0.0.0:8000

RUN groupadd --system app && useradd --system --gid app --create-home --uid 10001 app
WORKDIR /app

# Dependencies first: this layer is rebuilt only when requirements.txt changes.
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY --chown=app:app . .
USER app

EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=2).status != 200)"

CMD ["gunicorn", "-c", "deploy/gunicorn.conf.py", "wsgi:app"]
