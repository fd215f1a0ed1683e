"""Issue 11: /health/ still said ok while the worker was gone. /health/ready/ reports the database, the broker,
the deadline worker's and beat's heartbeats with their ages, and answers 503 when one is down or stale."""

import datetime

import pytest
import time_machine
from django.conf import settings
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from cgtclinic import health
from cgtclinic.models import Heartbeat
from cgtclinic.tasks import heartbeat
from tests.cgtclinic.helpers import needs_redis, running_worker, wait_until

pytestmark = pytest.mark.django_db


def beat_sent_heartbeat(at: datetime.datetime) -> PeriodicTask:
    every = IntervalSchedule.objects.create(every=health.HEARTBEAT_SECONDS, period=IntervalSchedule.SECONDS)
    return PeriodicTask.objects.create(
        name="cgtclinic-heartbeat", task=health.HEARTBEAT_TASK, interval=every, last_run_at=at
    )


def test_not_ready_until_worker_and_beat_have_been_heard_from(client):
    response = client.get("/health/ready/")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"]["ok"] and checks["broker"]["ok"]
    assert checks["worker"] == {"ok": False, "last_seen": None, "age_seconds": None}
    assert checks["beat"]["ok"] is False


def test_ready_with_fresh_heartbeats_then_stale(client):
    now = timezone.now()
    beat_sent_heartbeat(now - datetime.timedelta(seconds=10))
    health.record_worker_heartbeat(now - datetime.timedelta(seconds=5))
    response = client.get("/health/ready/")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["ready"] is True
    assert 4 <= body["checks"]["worker"]["age_seconds"] <= 60
    assert body["checks"]["worker"]["last_seen"].endswith("+08:00")  # read in Beijing time
    with time_machine.travel(now + datetime.timedelta(seconds=health.STALE_AFTER_SECONDS + 30)):
        stale = client.get("/health/ready/")
    assert stale.status_code == 503
    assert stale.json()["checks"]["worker"]["ok"] is False
    assert stale.json()["checks"]["beat"]["ok"] is False


def test_a_broker_outage_is_not_ready(client, settings):
    beat_sent_heartbeat(timezone.now())
    health.record_worker_heartbeat()
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    response = client.get("/health/ready/")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["ok"] is False
    assert "Error" in response.json()["checks"]["broker"]["error"]
    # A public endpoint: the kind of failure, never the broker's address.
    assert "127.0.0.1" not in response.content.decode()


def test_heartbeat_is_scheduled_on_the_deadline_queue():
    assert settings.CELERY_BEAT_SCHEDULE["cgtclinic-heartbeat"]["task"] == health.HEARTBEAT_TASK
    assert settings.CELERY_TASK_ROUTES[health.HEARTBEAT_TASK]["queue"] == settings.DEADLINE_QUEUE
    for task in ("ethics.tasks.recognition_remind", "ethics.tasks.recognition_escalate"):
        assert settings.CELERY_TASK_ROUTES[task]["queue"] == settings.DEADLINE_QUEUE
    assert "cgtclinic.tasks.deliver_notification" not in settings.CELERY_TASK_ROUTES


@needs_redis
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_records_its_heartbeat():
    with running_worker():
        heartbeat.delay()
        wait_until(lambda: Heartbeat.objects.filter(name=health.DEADLINE_WORKER).exists(), what="the heartbeat")
