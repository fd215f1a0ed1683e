"""Safety clocks on a real Celery worker and Redis: the ETA tasks remind and escalate once, and the sweep makes good
a flushed broker, still exactly once."""

import datetime

import pytest
import redis
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from cgtclinic.models import Notification
from ethics import safety
from ethics.models import SafetyClock, SafetyEffect
from ethics.tasks import sweep_safety_clocks
from tests.cgtclinic.helpers import flush_broker, needs_redis, running_worker, wait_until
from tests.ethics.safety_world import build_world, load_safety_parameters, record_sae

pytestmark = [needs_redis, pytest.mark.django_db(transaction=True)]
Kind = SafetyEffect.Kind


@pytest.fixture
def world_tx(transactional_db):
    load_safety_parameters()
    return build_world()


def clock_due_in(world, remind_in: float, due_in: float) -> SafetyClock:
    """An SAE whose sponsor clock reminds and falls due seconds from now (its committee clock far away)."""
    now = timezone.now()
    with transaction.atomic():
        event = record_sae(world, now)
        clock = event.clocks.get(kind=SafetyClock.Kind.SPONSOR_REPORT)
        clock.remind_at = now + datetime.timedelta(seconds=remind_in)
        clock.due_at = now + datetime.timedelta(seconds=due_in)
        clock.save()
        safety._schedule_timers([clock.pk])
    return clock


def effects(clock, kind) -> int:
    return SafetyEffect.objects.filter(clock=clock, kind=kind).count()


def _queued() -> int:
    client = redis.Redis.from_url(settings.REDIS_URL)
    return client.llen(settings.CELERY_TASK_DEFAULT_QUEUE) + client.llen(settings.DEADLINE_QUEUE)


def test_eta_tasks_remind_and_escalate_exactly_once(world_tx):
    with running_worker():
        clock = clock_due_in(world_tx, remind_in=1, due_in=2.5)
        wait_until(lambda: effects(clock, Kind.ESCALATION), what="the escalation")
        sweep_safety_clocks.delay()
        sweep_safety_clocks.delay()
        wait_until(lambda: not _queued(), what="the sweeps to finish")
    assert (effects(clock, Kind.REMINDER), effects(clock, Kind.ESCALATION)) == (1, 1)
    assert Notification.objects.filter(topic="safety.reminder", recipient=world_tx["pi"]).count() == 1
    assert Notification.objects.filter(topic="safety.escalation", recipient=world_tx["research_office"]).count() == 1
    clock.refresh_from_db()
    assert clock.escalated_at is not None


def test_the_sweep_makes_good_a_flushed_broker_once(world_tx):
    with running_worker():
        clock = clock_due_in(world_tx, remind_in=1, due_in=2)
    flush_broker()
    wait_until(lambda: timezone.now() > clock.due_at, what="the deadline to pass")
    assert not SafetyEffect.objects.exists()
    with running_worker(keep_queued=True):
        sweep_safety_clocks.delay()
        sweep_safety_clocks.delay()
        wait_until(lambda: effects(clock, Kind.ESCALATION), what="the escalation from the sweep")
        sweep_safety_clocks.delay()
        wait_until(lambda: not _queued(), what="the last sweep")
    # The reminder's moment passed with the deadline: only the escalation is sent, once.
    assert (effects(clock, Kind.REMINDER), effects(clock, Kind.ESCALATION)) == (0, 1)
    assert Notification.objects.filter(topic="safety.escalation", recipient=world_tx["pi"]).count() == 1


def test_a_step_before_the_deadline_means_no_escalation(world_tx):
    with running_worker():
        clock = clock_due_in(world_tx, remind_in=0.5, due_in=2)
        safety.safety_send_to_sponsor(event=clock.event, actor=world_tx["pi"])
        wait_until(lambda: timezone.now() > clock.due_at + datetime.timedelta(seconds=1), what="the deadline")
        sweep_safety_clocks.delay()
        wait_until(lambda: not _queued(), what="the sweep")
    assert effects(clock, Kind.ESCALATION) == 0
