"""Safety reports through the services: the steps and who may take them, the committee's SAE submission, the
effects of each clock exactly once (sweep run twice), and who is told."""

import datetime

import pytest
import time_machine
from django.utils import timezone

from cgtclinic.errors import DomainError, TransitionNotAllowed
from cgtclinic.models import Notification
from cgtclinic.roles import Role
from ethics import safety
from ethics.models import SafetyClock, SafetyEffect, SafetyEvent, Submission
from tests.ethics.safety_world import beijing, record_sae, record_susar
from tests.factories.cgtclinic import InstitutionFactory, UserFactory

C = SafetyClock.Kind
St = SafetyEvent.Status
pytestmark = pytest.mark.django_db


def test_an_sae_goes_to_the_sponsor_then_to_the_committee_which_reviews_it(world):
    pi, office = world["pi"], world["ethics_office"]
    with time_machine.travel(beijing(2026, 3, 2, 9, 0), tick=False):
        event = record_sae(world, beijing(2026, 3, 2, 8, 0))
        assert safety.available_steps(event, pi) == [safety.SEND_TO_SPONSOR, safety.FOLLOW_UP, safety.WITHDRAW]
        assert safety.available_steps(event, office) == []
        safety.safety_send_to_sponsor(event=event, actor=pi, at=beijing(2026, 3, 2, 8, 30))
    with time_machine.travel(beijing(2026, 3, 3, 10, 0), tick=False):
        event = safety.safety_report_to_ec(event=event, actor=pi)
    submission = event.ec_submission
    assert (submission.kind, submission.status, submission.committee) == (
        Submission.Kind.SAE,
        Submission.Status.SUBMITTED,
        world["committee"],
    )
    assert submission.details["safety_event"] == event.pk and submission.details["subject_code"] == "RK-001"
    sponsor, ec = event.clocks.get(kind=C.SPONSOR_REPORT), event.clocks.get(kind=C.EC_REPORT)
    assert (sponsor.late, sponsor.elapsed_hours) == (False, 0.5)
    assert ec.late is True  # 26 hours after awareness, against the seeded 24
    assert safety.available_steps(event, office) == [safety.COMMITTEE_REVIEW, safety.FOLLOW_UP][:1]
    with pytest.raises(DomainError):
        safety.safety_committee_review(event=event, actor=pi, opinion="ok")
    with time_machine.travel(beijing(2026, 3, 5, 10, 0), tick=False):
        event = safety.safety_committee_review(event=event, actor=office, opinion="同意继续研究，修订知情同意书。")
    submission.refresh_from_db()
    assert (event.status, submission.status) == (St.REVIEWED, Submission.Status.ACKNOWLEDGED)
    assert event.clocks.get(kind=C.COMMITTEE_REVIEW).late is False
    assert list(event.steps.values_list("step", flat=True)) == [
        "recorded",
        safety.SEND_TO_SPONSOR,
        safety.REPORT_TO_EC,
        safety.COMMITTEE_REVIEW,
    ]
    assert Notification.objects.filter(recipient=office, topic="safety.reported").exists()
    assert Notification.objects.filter(recipient=pi, topic="safety.reviewed").exists()


def test_refused_steps(world):
    pi = world["pi"]
    event = record_sae(world)
    with pytest.raises(TransitionNotAllowed):
        safety.safety_report_to_ec(event=event, actor=pi)
    with pytest.raises(TransitionNotAllowed):
        safety.safety_pi_review(event=event, actor=pi)
    stranger = UserFactory(role=Role.PI, institution=InstitutionFactory())
    with pytest.raises(DomainError) as refused:
        safety.safety_send_to_sponsor(event=event, actor=stranger)
    assert refused.value.code == "permission_denied"
    with pytest.raises(DomainError):
        safety.safety_send_to_sponsor(event=event, actor=pi, at=event.aware_at - datetime.timedelta(hours=1))
    with pytest.raises(DomainError):
        safety.safety_send_to_sponsor(event=event, actor=pi, at=timezone.now() + datetime.timedelta(days=1))
    with pytest.raises(DomainError):
        record_sae(world, criteria=[])
    with pytest.raises(DomainError):
        record_sae(world, actor=stranger)
    other_site_subject = world["subject"].__class__(trial=world["trial"], site_id=0, code="X")
    with pytest.raises(DomainError):
        record_sae(world, subject=other_site_subject)


def test_a_withdrawn_report_stops_its_clocks(world):
    event = safety.safety_withdraw(event=record_sae(world), actor=world["pi"], reason="录入错误")
    assert event.status == St.WITHDRAWN
    assert not SafetyClock.objects.open().filter(event=event).exists()
    assert safety.sweep(timezone.now() + datetime.timedelta(days=30)) == {"reminders": 0, "escalations": 0}


def test_a_susar_is_reviewed_by_the_pi_and_the_committee_and_its_follow_up_meets_the_sponsors_clock(world):
    pi, office = world["pi"], world["ethics_office"]
    with time_machine.travel(beijing(2026, 4, 10, 9, 0), tick=False):
        event = record_susar(world, datetime.date(2026, 4, 6), beijing(2026, 4, 9, 16, 0), fatal=True)
        assert Notification.objects.filter(recipient=pi, topic="safety.received").exists()
        assert event.status == St.RECEIVED
        safety.safety_pi_review(event=event, actor=pi)
        safety.safety_report_to_ec(event=event, actor=pi)
        follow_up = record_susar(
            world, datetime.date(2026, 4, 6), beijing(2026, 4, 10, 8, 0), fatal=True, follow_up_of=event
        )
    assert follow_up.sequence == 1 and follow_up.follow_up_of == event
    assert event.clocks.get(kind=C.SUSAR_FOLLOW_UP).met_at == follow_up.received_at
    assert not follow_up.clocks.filter(kind__in=[C.SUSAR_EXPEDITED, C.SUSAR_FOLLOW_UP]).exists()
    with time_machine.travel(beijing(2026, 4, 12, 9, 0), tick=False):
        safety.safety_committee_review(event=event, actor=office, opinion="已审阅")
    assert event.clocks.get(kind=C.COMMITTEE_REVIEW).late is False
    assert event.clocks.get(kind=C.PI_REVIEW).late is False


def test_without_a_committee_in_the_system_the_pi_says_when_it_was_reported(world):
    world["committee"].submissions.update(committee=world["committee"])
    world["committee"].decisions.all().delete()
    event = record_sae(world)
    safety.safety_send_to_sponsor(event=event, actor=world["pi"])
    with pytest.raises(DomainError) as refused:
        safety.safety_report_to_ec(event=event, actor=world["pi"])
    assert refused.value.field == "at"
    event = safety.safety_report_to_ec(event=event, actor=world["pi"], at=timezone.now())
    assert event.ec_submission is None and event.ec_reported_at is not None


def test_each_clock_reminds_once_and_escalates_once_to_whoever_must_act(world):
    aware = beijing(2026, 3, 2, 8, 0)
    with time_machine.travel(beijing(2026, 3, 2, 8, 5), tick=False):
        event = record_sae(world, aware)
    sponsor = event.clocks.get(kind=C.SPONSOR_REPORT)
    assert safety.sweep(sponsor.remind_at - datetime.timedelta(minutes=1)) == {"reminders": 0, "escalations": 0}
    assert safety.sweep(sponsor.remind_at) == {"reminders": 2, "escalations": 0}
    assert safety.sweep(sponsor.remind_at) == {"reminders": 0, "escalations": 0}
    after = sponsor.due_at + datetime.timedelta(minutes=1)
    assert safety.sweep(after) == {"reminders": 0, "escalations": 2}
    assert safety.sweep(after) == {"reminders": 0, "escalations": 0}
    assert SafetyEffect.objects.filter(clock__event=event).count() == 4
    reminded = set(Notification.objects.filter(topic="safety.reminder").values_list("recipient", flat=True))
    escalated = set(Notification.objects.filter(topic="safety.escalation").values_list("recipient", flat=True))
    assert reminded == {world["pi"].pk}
    assert escalated == {world["pi"].pk, world["research_office"].pk}
    sponsor.refresh_from_db()
    assert sponsor.escalated_at == after


def test_the_committee_review_clock_tells_the_ethics_office(world):
    with time_machine.travel(beijing(2026, 3, 2, 9, 0), tick=False):
        event = record_susar(world, datetime.date(2026, 3, 1), beijing(2026, 3, 2, 8, 0))
    review = event.clocks.get(kind=C.COMMITTEE_REVIEW)
    safety.sweep(review.due_at)
    people = set(
        Notification.objects.filter(topic="safety.escalation", event_key__contains="committee_review").values_list(
            "recipient", flat=True
        )
    )
    assert people == {world["ethics_office"].pk, world["research_office"].pk}
    link = Notification.objects.filter(recipient=world["ethics_office"], topic="safety.escalation").first().link
    assert link.startswith("/admin/")


def test_a_participating_site_without_its_own_approval_reports_to_the_lead_committee(world):
    from tests.factories.trials import TrialSiteFactory
    from trials.models import EnrolmentSubject

    site = TrialSiteFactory(trial=world["trial"])
    participating = {**world, "site": site, "pi": site.site_pi, "subject": None}
    participating["subject"] = EnrolmentSubject.objects.create(trial=world["trial"], site=site, code="P-001")
    event = record_sae(participating)
    assert not SafetyEvent.objects.visible_to(world["ethics_office"]).filter(pk=event.pk).exists()
    safety.safety_send_to_sponsor(event=event, actor=site.site_pi)
    event = safety.safety_report_to_ec(event=event, actor=site.site_pi)
    assert event.ec_submission.committee == world["committee"]
    lead_office = world["ethics_office"]
    assert SafetyEvent.objects.visible_to(lead_office).filter(pk=event.pk).exists()
    assert safety.available_steps(event, lead_office) == [safety.COMMITTEE_REVIEW]
    assert Notification.objects.filter(recipient=lead_office, topic="safety.reported").exists()
    safety.safety_committee_review(event=event, actor=lead_office, opinion="已审阅")
