"""gunicorn settings for the API: `gunicorn -c deploy/gunicorn.conf.py wsgi:app`.

Each worker builds its own app (and so its own database pool) after the fork:
`preload_app` stays off, because a pool created before forking would share its
sockets between processes.
"""

import os
import shutil
import sys
import tempfile
import threading

# Every worker writes its metrics here; set before the app (and prometheus_client)
# is imported by the workers, emptied when the server starts.
os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", os.path.join(tempfile.gettempdir(), "birthday-api-metrics")
)

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = 5
preload_app = False
accesslog = "-"
errorlog = "-"


def on_starting(server):
    """Refuse an exposed API without a token; start with an empty metrics directory."""
    refuse_anonymous_exposure(server)
    # Old metrics files would add stale samples.
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory, exist_ok=True)


def refuse_anonymous_exposure(server):
    """Stop before binding when other machines could reach an API with no token."""
    # Imported here: gunicorn has put the project directory on sys.path by now.
    import exposure
    from config import ConfigError, Settings

    try:
        settings = Settings.from_env()
    except ConfigError as error:
        server.log.error("%s", error)
        sys.exit(1)
    reason = exposure.refusal(settings, server.cfg.bind)
    if reason:
        server.log.error("%s", reason)
        sys.exit(1)
    warning = exposure.anonymous_warning(settings, server.cfg.bind)
    if warning:
        server.log.warning("%s", warning)


def child_exit(server, worker):
    """Let prometheus_client drop the live gauges of a worker that exited."""
    from operations.metrics import forget_process

    forget_process(worker.pid)


def post_worker_init(worker):
    """Open the worker's pool without waiting for PostgreSQL.

    A database that is down at start must not stop the API: it serves /health/live,
    answers /health and data requests with 503 until the database answers, and then
    serves normally. The pool connects in the background; a daemon thread logs what
    the worker waits for.
    """
    from api.resources import resources_of
    from db.availability import watch_database

    watch_database(resources_of(worker.wsgi).pool, "api")
    from app import check_zone_agreement

    # In the background: with PostgreSQL down it would hold up the first requests.
    threading.Thread(target=check_zone_agreement, args=(worker.wsgi,), daemon=True).start()


def worker_exit(server, worker):
    """Close the pool so PostgreSQL sees the sessions end cleanly."""
    app = getattr(worker, "wsgi", None)
    if app is not None:
        from api.resources import resources_of

        resources_of(app).pool.close()


# gunicorn's own lines (start-up, access log) in the same JSON shape as the app's.
if os.environ.get("LOG_FORMAT", "json").lower() == "json":
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
                "rename_fields": {"asctime": "timestamp", "levelname": "level", "name": "logger"},
            }
        },
        # gunicorn's defaults refer to handlers named console and error_console.
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            },
            "error_console": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            },
        },
        "root": {"level": "INFO", "handlers": ["console"]},
        "loggers": {
            "gunicorn.error": {"handlers": ["error_console"], "level": "INFO", "propagate": False},
            "gunicorn.access": {"handlers": ["console"], "level": "INFO", "propagate": False},
        },
    }
