"""Readiness: whether this installation can do its work now, not only answer HTTP.

The deadline effects need the database, the broker, a worker consuming the deadline queue and exactly one beat.
Beat sends ``cgtclinic.tasks.heartbeat`` every ``HEARTBEAT_SECONDS`` (and django-celery-beat records when it sent
it, ``PeriodicTask.last_run_at``); the deadline worker runs it and records when it did (``Heartbeat``). A process
not heard from for ``STALE_AFTER_SECONDS`` makes the installation not ready.
"""

import datetime
import logging
import os
import time

from django.conf import settings
from django.db import connection
from django.utils import timezone

from cgtclinic.models import Heartbeat

logger = logging.getLogger(__name__)

HEARTBEAT_TASK = "cgtclinic.tasks.heartbeat"
HEARTBEAT_SECONDS = 30
STALE_AFTER_SECONDS = 120
DEADLINE_WORKER = "deadline-worker"


def record_worker_heartbeat(now: datetime.datetime | None = None) -> None:
    Heartbeat.objects.update_or_create(name=DEADLINE_WORKER, defaults={"at": now or timezone.now()})


def _timed(check) -> dict:
    started = time.perf_counter()
    try:
        check()
    except Exception as exc:  # any failure of a dependency is what this check reports
        # The endpoint is public: it names the kind of failure; addresses and messages go to the log only.
        logger.warning("readiness check failed: %s", check.__name__, exc_info=True)
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _broker() -> None:
    if settings.REDIS_URL:
        import redis

        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2).ping()
    else:
        folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]
        if not os.access(folder, os.W_OK):
            raise OSError(f"the broker folder {folder} is not writable")


def _age(last: datetime.datetime | None, now: datetime.datetime) -> dict:
    if last is None:
        return {"ok": False, "last_seen": None, "age_seconds": None}
    age = (now - last).total_seconds()
    return {
        "ok": age <= STALE_AFTER_SECONDS,
        "last_seen": timezone.localtime(last).isoformat(),
        "age_seconds": round(age),
    }


def readiness() -> dict:
    """Each dependency with its state; ``ready`` only when every one is fine."""
    from django_celery_beat.models import PeriodicTask

    now = timezone.now()
    checks = {"database": _timed(_database), "broker": _timed(_broker)}
    if checks["database"]["ok"]:
        worker = Heartbeat.objects.filter(name=DEADLINE_WORKER).values_list("at", flat=True).first()
        beat = (
            PeriodicTask.objects.filter(task=HEARTBEAT_TASK, enabled=True)
            .order_by("-last_run_at")
            .values_list("last_run_at", flat=True)
            .first()
        )
        checks["worker"] = _age(worker, now)
        checks["beat"] = _age(beat, now)
    else:
        checks["worker"] = checks["beat"] = {"ok": False, "error": "database unavailable"}
    return {
        "ready": all(check["ok"] for check in checks.values()),
        "checked_at": timezone.localtime(now).isoformat(),
        "stale_after_seconds": STALE_AFTER_SECONDS,
        "checks": checks,
    }
