"""Filing timers on a real Celery worker and Redis: the ETA tasks act once, the sweep after them changes nothing."""

import datetime

import pytest
from django.db import transaction
from django.utils import timezone

from cgtclinic.models import Notification
from tests.cgtclinic.helpers import needs_redis, running_worker, wait_until
from tests.factories.trials import FilingObligationFactory, TrialFactory
from trials import filings
from trials.models import FilingEffect
from trials.tasks import sweep_filing_deadlines

pytestmark = [needs_redis, pytest.mark.django_db(transaction=True)]


def test_reminder_and_escalation_happen_exactly_once_on_a_worker(institution):
    trial = TrialFactory(lead_institution=institution)
    now = timezone.now()
    with running_worker():
        with transaction.atomic():
            obligation = FilingObligationFactory(
                trial=trial,
                remind_at=now + datetime.timedelta(seconds=1),
                due_at=now + datetime.timedelta(seconds=2),
            )
            filings._schedule_timers([obligation.pk])
        wait_until(
            lambda: FilingEffect.objects.filter(obligation=obligation, kind="escalation").exists(),
            what="the escalation",
        )
        sweep_filing_deadlines.delay()
        sweep_filing_deadlines.delay()
        wait_until(lambda: _queued() == 0, what="the sweeps")
    assert sorted(FilingEffect.objects.filter(obligation=obligation).values_list("kind", flat=True)) == [
        "escalation",
        "reminder",
    ]
    assert Notification.objects.filter(topic="filing.escalation", recipient=trial.pi).count() == 1


def _queued() -> int:
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    return client.llen("celery") + client.llen(settings.DEADLINE_QUEUE)
