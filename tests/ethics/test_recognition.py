"""Mutual recognition: requests on a lead approval, working-day deadlines, responses, exactly-once effects."""

import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile

from cgtclinic import workdays
from cgtclinic.errors import DomainError, TransitionNotAllowed
from cgtclinic.models import HolidaySchedule, Notification
from cgtclinic.roles import Role
from ethics import recognition, services
from ethics.models import Decision, RecognitionEffect, RecognitionRequest, Submission
from tests.factories.cgtclinic import InstitutionFactory, UserFactory
from tests.factories.ethics import AllianceFactory, EthicsCommitteeFactory, balanced_committee
from tests.factories.trials import PDF_BYTES, TrialSiteFactory

SH = ZoneInfo("Asia/Shanghai")
R = RecognitionRequest.Status
pytestmark = pytest.mark.django_db
# Friday 25 September 2026 (Mid-Autumn Festival), 10:00 in Beijing: the three working days are Mon 28, Tue 29,
# Wed 30 September.
FRIDAY = datetime.datetime(2026, 9, 25, 10, 0, tzinfo=SH)


@pytest.fixture(autouse=True)
def calendar_2026(db):
    workdays.sync_from_package(years=[2025, 2026])


@pytest.fixture
def network(committee, trial):
    """The lead committee (from tests/ethics/conftest.py), a participating hospital in the alliance, one outside."""
    member_hospital, outsider = InstitutionFactory(), InstitutionFactory()
    member_committee = EthicsCommitteeFactory(institution=member_hospital)
    EthicsCommitteeFactory(institution=outsider)
    alliance = AllianceFactory(members=[committee, member_committee])
    return {
        "alliance": alliance,
        "member_site": TrialSiteFactory(trial=trial, institution=member_hospital),
        "outsider_site": TrialSiteFactory(trial=trial, institution=outsider),
        "member_committee": member_committee,
        "member_office": UserFactory(role=Role.ETHICS_OFFICE, institution=member_hospital),
        "member_research_office": UserFactory(role=Role.RESEARCH_OFFICE, institution=member_hospital),
    }


def approve(routed, office, committee):
    submission = routed("expedited")
    assignment = services.reviewer_assign(submission=submission, actor=office, member=committee.members.first())
    services.opinion_record(assignment=assignment, actor=office, opinion="approve")
    return services.decision_record(submission=submission, actor=office, outcome=Decision.Outcome.APPROVE)


@pytest.fixture
def opened(network, routed, office, committee):
    with time_machine.travel(FRIDAY, tick=False):
        approve(routed, office, committee)
    return RecognitionRequest.objects.get()


def test_lead_approval_asks_only_alliance_members_with_a_working_day_deadline(opened, network):
    assert opened.site == network["member_site"] and opened.committee == network["member_committee"]
    assert opened.received_at == FRIDAY
    assert opened.due_at == datetime.datetime(2026, 10, 1, 0, 0, tzinfo=SH)  # end of Wednesday 30 September
    assert opened.remind_at == datetime.datetime(2026, 9, 30, 9, 0, tzinfo=SH)  # start of the last working day
    assert not opened.provisional
    assert opened.subject == Submission.Kind.INITIAL


def test_close_of_business_ends_the_deadline_on_the_last_working_day(network, routed, office, committee):
    network["alliance"].close_of_business = datetime.time(17, 30)
    network["alliance"].save()
    with time_machine.travel(FRIDAY, tick=False):
        approve(routed, office, committee)
    assert RecognitionRequest.objects.get().due_at == datetime.datetime(2026, 9, 30, 17, 30, tzinfo=SH)


def test_national_day_holiday_is_skipped(network, routed, office, committee):
    # Received Wednesday 30 September: 1-7 October are holidays, Saturday 10 October is a make-up working day.
    with time_machine.travel(datetime.datetime(2026, 9, 30, 15, 0, tzinfo=SH), tick=False):
        approve(routed, office, committee)
    request = RecognitionRequest.objects.get()
    assert (
        request.due_at.astimezone(SH).date() == workdays.add_working_days(datetime.date(2026, 9, 30), 3).due_at.date()
    )
    assert request.due_at > datetime.datetime(2026, 10, 8, tzinfo=SH)


def test_recognising_in_time_is_not_late_and_records_the_site_approval(opened, network):
    with time_machine.travel(datetime.datetime(2026, 9, 29, 11, 0, tzinfo=SH), tick=False):
        answered = recognition.recognition_respond(request=opened, actor=network["member_office"], outcome=R.RECOGNISED)
    assert (answered.status, answered.late, answered.responded_by) == (R.RECOGNISED, False, network["member_office"])
    # Friday 25 September 2026 is the Mid-Autumn Festival: only Monday and Tuesday until 11:00 count.
    assert answered.response_working_hours == 24 + 11
    network["member_site"].refresh_from_db()
    assert network["member_site"].ethics_approved_on == datetime.date(2026, 9, 29)


def test_a_late_answer_is_accepted_and_marked_late(opened, network):
    with time_machine.travel(datetime.datetime(2026, 10, 9, 9, 0, tzinfo=SH), tick=False):
        answered = recognition.recognition_respond(
            request=opened,
            actor=network["member_office"],
            outcome=R.RECOGNISED_WITH_CONDITIONS,
            note="本中心知情同意书需补充联系人",
        )
    assert answered.late


def test_conditions_and_declines_need_a_note_and_declining_opens_a_local_review(opened, network):
    with pytest.raises(DomainError):
        recognition.recognition_respond(request=opened, actor=network["member_office"], outcome=R.DECLINED)
    answered = recognition.recognition_respond(
        request=opened, actor=network["member_office"], outcome=R.DECLINED, note="本院需独立评估细胞制备风险"
    )
    assert answered.local_review.committee == network["member_committee"]
    assert answered.local_review.kind == Submission.Kind.INITIAL
    with pytest.raises(TransitionNotAllowed):
        recognition.recognition_respond(request=opened, actor=network["member_office"], outcome=R.RECOGNISED)


def test_only_the_participating_ethics_office_answers(opened, network, office):
    for actor in (office, network["member_research_office"], opened.trial.pi):
        with pytest.raises(DomainError):
            recognition.recognition_respond(request=opened, actor=actor, outcome=R.RECOGNISED)
    opened.refresh_from_db()
    assert opened.status == R.OPEN


def test_sweep_reminds_then_escalates_exactly_once(opened, network):
    assert recognition.sweep(datetime.datetime(2026, 9, 30, 8, 59, tzinfo=SH)) == {"reminders": 0, "escalations": 0}
    at_reminder = datetime.datetime(2026, 9, 30, 9, 0, tzinfo=SH)
    assert recognition.sweep(at_reminder) == {"reminders": 1, "escalations": 0}
    assert recognition.sweep(at_reminder) == {"reminders": 0, "escalations": 0}
    assert recognition.recognition_remind(opened.pk, at_reminder) is False
    reminded = Notification.objects.filter(topic="recognition.reminder")
    assert [n.recipient for n in reminded] == [network["member_office"]]

    at_due = datetime.datetime(2026, 10, 1, 0, 0, tzinfo=SH)
    assert recognition.sweep(at_due) == {"reminders": 0, "escalations": 1}
    assert recognition.sweep(at_due) == {"reminders": 0, "escalations": 0}
    assert recognition.recognition_escalate(opened.pk, at_due) is False
    escalated = {n.recipient for n in Notification.objects.filter(topic="recognition.escalation")}
    assert network["member_research_office"] in escalated and network["member_office"] in escalated
    assert RecognitionEffect.objects.filter(request=opened).count() == 2
    opened.refresh_from_db()
    assert opened.escalated_at == at_due


def test_a_response_before_the_deadline_prevents_the_escalation(opened, network):
    recognition.recognition_respond(request=opened, actor=network["member_office"], outcome=R.RECOGNISED)
    assert recognition.sweep(datetime.datetime(2026, 10, 2, tzinfo=SH)) == {"reminders": 0, "escalations": 0}
    assert not RecognitionEffect.objects.exists()


def test_coordinator_and_chair_are_told_of_an_escalation(opened, network):
    coordinator = UserFactory(role=Role.RESEARCH_OFFICE)
    network["alliance"].coordinator = coordinator
    network["alliance"].save()
    chair_account = UserFactory(role=Role.ETHICS_OFFICE, institution=network["member_committee"].institution)
    balanced_committee(network["member_committee"])
    chair = network["member_committee"].members.get(member_role="chair")
    chair.user = chair_account
    chair.save()
    recognition.sweep(datetime.datetime(2026, 10, 1, 0, 1, tzinfo=SH))
    escalated = {n.recipient for n in Notification.objects.filter(topic="recognition.escalation")}
    assert {coordinator, chair_account} <= escalated


def test_an_amendment_approval_supersedes_the_open_request(opened, network, office, committee):
    new = recognition._open_request(
        alliance=network["alliance"],
        trial=opened.trial,
        site=opened.site,
        committee=opened.committee,
        subject=Submission.Kind.AMENDMENT,
        received_at=opened.received_at,
        actor=office,
    )
    opened.refresh_from_db()
    assert (opened.status, opened.superseded_by) == (R.SUPERSEDED, new)
    assert RecognitionRequest.objects.open().get() == new


def test_withdraw_by_the_lead_office_only(opened, network, office):
    with pytest.raises(DomainError):
        recognition.recognition_withdraw(request=opened, actor=network["member_office"], reason="误发")
    withdrawn = recognition.recognition_withdraw(request=opened, actor=office, reason="批件信息有误")
    assert withdrawn.status == R.WITHDRAWN
    assert recognition.sweep(datetime.datetime(2026, 10, 2, tzinfo=SH)) == {"reminders": 0, "escalations": 0}


def test_external_lead_approval_is_recorded_with_its_letter(network, trial):
    request = recognition.request_record_external(
        actor=network["member_office"],
        site=network["member_site"],
        alliance=network["alliance"],
        letter_number="外院伦审〔2026〕088号",
        letter_file=SimpleUploadedFile("批件.pdf", PDF_BYTES),
        received_at=FRIDAY,
    )
    assert request.external_lead_letter.sha256 and request.due_at == datetime.datetime(2026, 10, 1, tzinfo=SH)
    with pytest.raises(DomainError):
        recognition.request_record_external(
            actor=network["member_office"],
            site=network["outsider_site"],
            alliance=network["alliance"],
            letter_number="x",
            letter_file=SimpleUploadedFile("批件.pdf", PDF_BYTES),
        )


def test_a_deadline_into_a_year_without_schedule_is_provisional_and_recomputed(network, office):
    received = datetime.datetime(2026, 12, 30, 16, 0, tzinfo=SH)
    request = recognition._open_request(
        alliance=network["alliance"],
        trial=network["member_site"].trial,
        site=network["member_site"],
        committee=network["member_committee"],
        subject=Submission.Kind.INITIAL,
        received_at=received,
        actor=office,
    )
    assert request.provisional and request.provisional_years == [2027]
    provisional_due = request.due_at
    # The State Council's 2027 schedule arrives, say with 4 January as an extra holiday.
    schedule = HolidaySchedule.objects.create(
        year=2027, source="office", notice="国办发明电〔2026〕1号", published_on=datetime.date(2026, 12, 1)
    )
    schedule.days.create(date=datetime.date(2027, 1, 1), kind="holiday", name="元旦")
    schedule.days.create(date=datetime.date(2027, 1, 4), kind="holiday", name="元旦")
    assert recognition.recompute_deadlines((2027,)) == 1
    request.refresh_from_db()
    assert not request.provisional and request.due_at > provisional_due
