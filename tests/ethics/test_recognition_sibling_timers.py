"""Issue 11: when two requests share a deadline, one's escalation locked the alliance, committee and trial rows with
its own (FOR UPDATE without OF), the sibling's SKIP LOCKED then skipped its row, and its effect waited for the
minute sweep (6 of 15 effects 10-31 s late with no fault at all). Timers lock only their own row."""

import datetime
import threading
import time

import pytest
from django.db import connection, transaction
from django.utils import timezone

from cgtclinic.roles import Role
from ethics import recognition
from ethics.models import RecognitionEffect, RecognitionRequest, Submission
from tests.factories.cgtclinic import InstitutionFactory, UserFactory
from tests.factories.ethics import AllianceFactory, EthicsCommitteeFactory
from tests.factories.trials import TrialFactory, TrialSiteFactory

pytestmark = pytest.mark.django_db(transaction=True)
SIBLINGS = 50


def siblings(count: int, *, due_in: float = -1) -> list[RecognitionRequest]:
    """Requests of one trial's sites at one committee of one alliance, all due at the same moment."""
    lead_hospital, member_hospital = InstitutionFactory(), InstitutionFactory()
    lead, member = (
        EthicsCommitteeFactory(institution=lead_hospital),
        EthicsCommitteeFactory(institution=member_hospital),
    )
    alliance = AllianceFactory(members=[lead, member])
    UserFactory(role=Role.ETHICS_OFFICE, institution=member_hospital)
    trial = TrialFactory(lead_institution=lead_hospital)
    now = timezone.now()
    due = now + datetime.timedelta(seconds=due_in)
    return [
        RecognitionRequest.objects.create(
            alliance=alliance,
            trial=trial,
            site=TrialSiteFactory(trial=trial, institution=InstitutionFactory()),
            committee=member,
            subject=Submission.Kind.INITIAL,
            received_at=now - datetime.timedelta(days=3),
            remind_at=due,
            due_at=due,
        )
        for _ in range(count)
    ]


def in_thread(function, *args):
    result = {}

    def run():
        try:
            result["value"] = function(*args)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    return result.get("value")


def test_a_sibling_escalates_while_another_escalation_is_in_progress():
    first, second = siblings(2)
    with transaction.atomic():
        # The first escalation has run and its transaction is still open (e.g. sending its notifications).
        assert recognition.recognition_escalate(first.pk)
        assert in_thread(recognition.recognition_escalate, second.pk) is True
    assert RecognitionEffect.objects.filter(kind=RecognitionEffect.Kind.ESCALATION).count() == 2


def test_fifty_siblings_sharing_a_deadline_all_land_at_once():
    requests = siblings(SIBLINGS)
    started = time.monotonic()
    done = []

    def escalate(chunk):
        try:
            done.extend(recognition.recognition_escalate(request.pk) for request in chunk)
        finally:
            connection.close()

    threads = [threading.Thread(target=escalate, args=(requests[n::4],)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert done.count(True) == SIBLINGS, "no sibling was skipped for a lock it does not need"
    assert time.monotonic() - started < 5
    assert RecognitionEffect.objects.filter(kind=RecognitionEffect.Kind.ESCALATION).count() == SIBLINGS
