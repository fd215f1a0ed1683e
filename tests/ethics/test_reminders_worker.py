"""The beat task on a real Celery worker and Redis: one reminder, and still one after Redis loses everything."""

import datetime

import pytest
from django.core import mail
from django.utils import timezone

from cgtclinic.models import Notification
from ethics.models import ContinuingReviewReminder, Submission
from ethics.tasks import sweep_continuing_reviews
from tests.cgtclinic.helpers import flush_broker, needs_redis, running_worker, wait_until
from tests.factories.ethics import DecisionFactory, SubmissionFactory
from tests.factories.trials import TrialFactory

pytestmark = [needs_redis, pytest.mark.django_db(transaction=True)]


def approved_due_in(committee, days):
    trial = TrialFactory(lead_institution=committee.institution)
    submission = SubmissionFactory(trial=trial, committee=committee, status=Submission.Status.DECIDED)
    return DecisionFactory(
        submission=submission, next_continuing_review_due=timezone.localdate() + datetime.timedelta(days=days)
    )


def test_sweep_on_a_worker_reminds_once_even_after_the_broker_is_flushed(committee, office, research_office):
    inside_window = committee.continuing_review_reminder_days - 1
    first = approved_due_in(committee, inside_window)
    with running_worker():
        sweep_continuing_reviews.delay()
        wait_until(lambda: first.reminders.exists(), what="the first reminder")
        wait_until(lambda: len(mail.outbox) == 3, what="e-mails to the PI and both offices")
        assert ContinuingReviewReminder.objects.count() == 1

        flush_broker()  # Redis loses its queues; the database still knows what was sent
        second = approved_due_in(committee, inside_window)
        sweep_continuing_reviews.delay()
        sweep_continuing_reviews.delay()
        wait_until(lambda: second.reminders.exists(), what="the later decision's reminder")
        wait_until(lambda: len(mail.outbox) == 6, what="e-mails about the later decision")

    assert list(first.reminders.values_list("stage", flat=True)) == [ContinuingReviewReminder.Stage.UPCOMING]
    assert ContinuingReviewReminder.objects.count() == 2
    assert Notification.objects.count() == 6
    assert sorted(m.to[0] for m in mail.outbox) == sorted(n.recipient.email for n in Notification.objects.all())
