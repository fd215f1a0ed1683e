"""GCP-certificate reminders on a real Celery worker: the sweep, sent twice at once on the deadlines queue, tells
the holder and their research office exactly once."""

import pytest

from cgtclinic.models import Notification
from cgtclinic.roles import Role
from tests.cgtclinic.helpers import needs_redis, running_worker, wait_until
from tests.factories.cgtclinic import UserFactory
from tests.factories.trials import GcpCertificateFactory, days_ago, seed_reminder_days
from trials.models import CertificateReminder
from trials.tasks import sweep_certificate_reminders

pytestmark = [needs_redis, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def reminder_days():
    return seed_reminder_days()


def test_the_sweep_on_a_worker_reminds_exactly_once(reminder_days):
    holder = UserFactory(role=Role.PI)
    office = UserFactory(role=Role.RESEARCH_OFFICE, institution=holder.institution)
    certificate = GcpCertificateFactory(person=holder, expires_on=days_ago(-reminder_days))
    with running_worker():
        for _ in range(3):
            sweep_certificate_reminders.delay()
        wait_until(lambda: CertificateReminder.objects.exists(), what="the reminder")
        wait_until(lambda: not _queued(), what="the other sweeps")
    # The worker has stopped: every sweep ran, and the later ones found the reminder already sent.
    assert CertificateReminder.objects.filter(certificate=certificate).count() == 1
    told = Notification.objects.filter(topic="gcp_certificate.before_expiry")
    assert set(told.values_list("recipient", flat=True)) == {holder.pk, office.pk}


def _queued() -> int:
    """Sweeps still waiting on the deadlines queue of the test's Redis broker."""
    import redis
    from django.conf import settings

    return redis.Redis.from_url(settings.REDIS_URL).llen(settings.DEADLINE_QUEUE)
