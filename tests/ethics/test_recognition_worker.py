"""Recognition timers on a real Celery worker and Redis: ETA tasks act once, and the sweep makes good whatever
the broker lost (worker stopped, Redis flushed), still exactly once."""

import datetime

import pytest
from django.db import transaction
from django.utils import timezone

from cgtclinic.models import Notification
from cgtclinic.roles import Role
from ethics import recognition
from ethics.models import RecognitionEffect, RecognitionRequest, Submission
from ethics.tasks import sweep_recognition_deadlines
from tests.cgtclinic.helpers import flush_broker, needs_redis, running_worker, wait_until
from tests.factories.cgtclinic import InstitutionFactory, UserFactory
from tests.factories.ethics import AllianceFactory, EthicsCommitteeFactory
from tests.factories.trials import TrialFactory, TrialSiteFactory

pytestmark = [needs_redis, pytest.mark.django_db(transaction=True)]
Kind = RecognitionEffect.Kind


@pytest.fixture
def setup(db):
    lead_hospital, member_hospital = InstitutionFactory(), InstitutionFactory()
    lead, member = (
        EthicsCommitteeFactory(institution=lead_hospital),
        EthicsCommitteeFactory(institution=member_hospital),
    )
    alliance = AllianceFactory(members=[lead, member])
    trial = TrialFactory(lead_institution=lead_hospital)
    site = TrialSiteFactory(trial=trial, institution=member_hospital)
    office = UserFactory(role=Role.ETHICS_OFFICE, institution=member_hospital)
    UserFactory(role=Role.RESEARCH_OFFICE, institution=member_hospital)
    return {"alliance": alliance, "trial": trial, "site": site, "committee": member, "office": office}


def request_due_in(setup, remind_in: float, due_in: float) -> RecognitionRequest:
    """A request whose reminder and deadline are seconds away, with its timers queued on commit."""
    now = timezone.now()
    with transaction.atomic():
        request = RecognitionRequest.objects.create(
            alliance=setup["alliance"],
            trial=setup["trial"],
            site=setup["site"],
            committee=setup["committee"],
            subject=Submission.Kind.INITIAL,
            received_at=now,
            remind_at=now + datetime.timedelta(seconds=remind_in),
            due_at=now + datetime.timedelta(seconds=due_in),
        )
        recognition._schedule_timers([request.pk])
    return request


def effects(request, kind):
    return RecognitionEffect.objects.filter(request=request, kind=kind).count()


def test_eta_tasks_remind_and_escalate_exactly_once(setup):
    with running_worker():
        request = request_due_in(setup, remind_in=1, due_in=2.5)
        wait_until(lambda: effects(request, Kind.ESCALATION), what="the escalation")
        # The sweep runs after the ETA tasks did their work: it finds nothing left to do.
        sweep_recognition_deadlines.delay()
        sweep_recognition_deadlines.delay()
        wait_until(lambda: not _queued(), what="the sweeps to finish")
    assert (effects(request, Kind.REMINDER), effects(request, Kind.ESCALATION)) == (1, 1)
    assert Notification.objects.filter(topic="recognition.reminder").count() == 1
    request.refresh_from_db()
    assert request.escalated_at is not None


def test_sweep_makes_good_a_flushed_broker_and_a_stopped_worker_once(setup):
    with running_worker():
        request = request_due_in(setup, remind_in=1, due_in=2)
    # The worker stopped before the ETAs, and Redis loses the queued messages.
    flush_broker()
    wait_until(lambda: timezone.now() > request.due_at, what="the deadline to pass")
    assert not RecognitionEffect.objects.exists()
    with running_worker(keep_queued=True):
        sweep_recognition_deadlines.delay()
        sweep_recognition_deadlines.delay()
        wait_until(lambda: effects(request, Kind.ESCALATION), what="the escalation from the sweep")
        sweep_recognition_deadlines.delay()
        wait_until(lambda: not _queued(), what="the last sweep")
    assert (effects(request, Kind.REMINDER), effects(request, Kind.ESCALATION)) == (1, 1)
    assert Notification.objects.filter(topic="recognition.escalation").count() >= 1


def test_a_response_before_the_deadline_means_no_escalation(setup):
    with running_worker():
        request = request_due_in(setup, remind_in=0.5, due_in=2)
        recognition.recognition_respond(request=request, actor=setup["office"], outcome="recognised")
        wait_until(lambda: timezone.now() > request.due_at + datetime.timedelta(seconds=1), what="the deadline")
        sweep_recognition_deadlines.delay()
        wait_until(lambda: not _queued(), what="the sweep")
    assert effects(request, Kind.ESCALATION) == 0
    assert not Notification.objects.filter(topic="recognition.escalation").exists()


def _queued() -> int:
    """Messages still waiting in the test's Redis broker queue."""
    import redis
    from django.conf import settings

    return redis.Redis.from_url(settings.REDIS_URL).llen("celery")
