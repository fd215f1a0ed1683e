"""Full-board review: agenda, attendance and quorum, recusal for conflicts, votes, majority decisions."""

import datetime

import pytest
import time_machine
from django.utils import timezone

from cgtclinic.errors import DomainError, TransitionNotAllowed
from cgtclinic.roles import Role
from ethics import services
from ethics.models import CommitteeMember, Decision, Meeting, Submission
from tests.factories.cgtclinic import UserFactory
from tests.factories.ethics import CommitteeMemberFactory, EthicsCommitteeFactory, SubmissionFactory
from trials.models import Trial

Outcome = Decision.Outcome
SHANGHAI = datetime.timezone(datetime.timedelta(hours=8))
pytestmark = pytest.mark.django_db


@pytest.fixture
def meeting(committee, office):
    return services.meeting_schedule(committee=committee, actor=office, scheduled_at=timezone.now(), location="会议室")


@pytest.fixture
def on_agenda(routed, meeting, office):
    submission = routed("full_board")
    return services.meeting_add_submission(meeting=meeting, actor=office, submission=submission)


def members(committee):
    return list(committee.members.order_by("id"))


def test_quorum_needs_more_than_half_and_the_required_mix(committee, meeting, office):
    everyone = members(committee)  # 7 members: chair (m), vice (f), lawyer (m, external), lay (f, external), 3 more
    assert committee.quorum_size(len(everyone)) == 4
    services.meeting_record_attendance(meeting=meeting, actor=office, members=everyone[:3])
    meeting.refresh_from_db()
    assert meeting.status == Meeting.Status.HELD and meeting.quorum_met is False
    assert "3" in meeting.quorum_note

    medical_only = [m for m in everyone if m.is_medical]
    result = services.quorum_check(
        meeting=services.meeting_record_attendance(meeting=meeting, actor=office, members=medical_only)
    )
    assert not result.met
    assert any("non-medical" in p or "非医" in p for p in result.problems)

    services.meeting_record_attendance(meeting=meeting, actor=office, members=everyone)
    meeting.refresh_from_db()
    assert meeting.quorum_met is True


def test_same_gender_attendance_is_no_quorum(committee, meeting, office):
    committee.members.update(gender=CommitteeMember.Gender.MALE)
    result = services.quorum_check(
        meeting=services.meeting_record_attendance(meeting=meeting, actor=office, members=members(committee))
    )
    assert not result.met


def test_only_submissions_awaiting_a_meeting_go_on_the_agenda(complete_initial, meeting, office):
    with pytest.raises(TransitionNotAllowed):
        services.meeting_add_submission(meeting=meeting, actor=office, submission=complete_initial)


def test_submission_of_another_committee_is_refused(routed, office):
    submission = routed("full_board")
    other = EthicsCommitteeFactory(institution=submission.committee.institution, name_zh="第二伦理委员会")
    meeting = Meeting.objects.create(committee=other, scheduled_at=timezone.now())
    with pytest.raises(DomainError):
        services.meeting_add_submission(meeting=meeting, actor=office, submission=submission)


def test_full_board_approval_by_majority(committee, on_agenda, office):
    everyone = members(committee)
    services.meeting_record_attendance(meeting=on_agenda.meeting, actor=office, members=everyone)
    votes = dict.fromkeys(everyone[:5], "approve") | dict.fromkeys(everyone[5:], "disapprove")
    services.vote_record(agenda_item=on_agenda, actor=office, votes=votes)
    with pytest.raises(DomainError) as err:
        services.decision_record(
            submission=on_agenda.submission, actor=office, outcome=Outcome.DISAPPROVE, requested_modifications="x"
        )
    assert err.value.code == "no_majority"
    decision = services.decision_record(submission=on_agenda.submission, actor=office, outcome=Outcome.APPROVE)
    assert (decision.votes_for, decision.votes_against, decision.meeting) == (5, 2, on_agenda.meeting)
    assert Trial.objects.get(pk=on_agenda.submission.trial_id).status == Trial.Status.APPROVED


def test_tied_vote_has_no_majority(committee, on_agenda, office):
    everyone = members(committee)[:6]
    services.meeting_record_attendance(meeting=on_agenda.meeting, actor=office, members=everyone)
    votes = dict.fromkeys(everyone[:3], "approve") | dict.fromkeys(everyone[3:], "modify_and_resubmit")
    services.vote_record(agenda_item=on_agenda, actor=office, votes=votes)
    with pytest.raises(DomainError):
        services.decision_record(submission=on_agenda.submission, actor=office, outcome=Outcome.APPROVE)


def test_recused_member_cannot_vote_and_does_not_count_for_quorum(committee, on_agenda, office):
    everyone = members(committee)
    lawyer = next(m for m in everyone if m.specialty == CommitteeMember.Specialty.LAW)
    lay = next(m for m in everyone if m.specialty == CommitteeMember.Specialty.COMMUNITY)
    present = [m for m in everyone if m != lay]
    services.meeting_record_attendance(meeting=on_agenda.meeting, actor=office, members=present)
    assert services.quorum_check(meeting=on_agenda.meeting, agenda_item=on_agenda).met
    services.conflict_declare(agenda_item=on_agenda, actor=office, member=lawyer, description="担任申办方法律顾问")
    # Without the lawyer no external member remains for this item.
    result = services.quorum_check(meeting=on_agenda.meeting, agenda_item=on_agenda)
    assert not result.met
    with pytest.raises(DomainError) as err:
        services.vote_record(agenda_item=on_agenda, actor=office, votes=dict.fromkeys(present, "approve"))
    assert err.value.code == "no_quorum"

    services.meeting_record_attendance(meeting=on_agenda.meeting, actor=office, members=everyone)
    with pytest.raises(DomainError):
        services.vote_record(agenda_item=on_agenda, actor=office, votes=dict.fromkeys(everyone, "approve"))
    voters = [m for m in everyone if m != lawyer]
    services.vote_record(agenda_item=on_agenda, actor=office, votes=dict.fromkeys(voters, "approve"))
    with pytest.raises(TransitionNotAllowed):
        services.conflict_declare(agenda_item=on_agenda, actor=office, member=voters[0], description="late")


def test_absent_member_cannot_vote(committee, on_agenda, office):
    everyone = members(committee)
    services.meeting_record_attendance(meeting=on_agenda.meeting, actor=office, members=everyone[:6])
    with pytest.raises(DomainError):
        services.vote_record(agenda_item=on_agenda, actor=office, votes={everyone[6]: "approve"})


def test_decision_needs_a_held_meeting(on_agenda, office):
    with pytest.raises(DomainError) as err:
        services.decision_record(submission=on_agenda.submission, actor=office, outcome=Outcome.APPROVE)
    assert err.value.code == "no_meeting"


def test_member_of_another_committee_cannot_attend(meeting, office):
    with pytest.raises(DomainError):
        services.meeting_record_attendance(meeting=meeting, actor=office, members=[CommitteeMemberFactory()])


def approve_in_meeting(submission, office, outcome=Outcome.APPROVE, text=""):
    meeting = services.meeting_schedule(committee=submission.committee, actor=office, scheduled_at=timezone.now())
    item = services.meeting_add_submission(meeting=meeting, actor=office, submission=submission)
    everyone = members(submission.committee)
    services.meeting_record_attendance(meeting=meeting, actor=office, members=everyone)
    vote = outcome if outcome not in (Outcome.SUSPEND, Outcome.TERMINATE) else "disapprove"
    services.vote_record(agenda_item=item, actor=office, votes=dict.fromkeys(everyone, vote))
    return services.decision_record(submission=submission, actor=office, outcome=outcome, requested_modifications=text)


def file_report(trial, office, kind, details):
    report = services.submission_create(actor=trial.pi, trial=trial, kind=kind, summary=kind, details=details)
    report = services.submission_submit(submission=report, actor=trial.pi)
    services.submission_accept(submission=report, actor=office)
    return services.submission_route(submission=report, actor=office, review_type="full_board", reason="会议审查")


def test_committee_suspends_then_terminates_an_approved_study(routed, office):
    initial = routed("full_board")
    approve_in_meeting(initial, office)
    trial = Trial.objects.get(pk=initial.trial_id)
    sae = file_report(
        trial,
        office,
        "sae",
        {"event_date": "2026-11-01", "description": "死亡", "causality": "可能有关", "outcome": "死亡"},
    )
    approve_in_meeting(sae, office, Outcome.SUSPEND, "暂停入组，待安全性评估")
    trial.refresh_from_db()
    assert trial.status == Trial.Status.SUSPENDED
    final = file_report(
        trial,
        office,
        "suspension_termination",
        {"action": "终止", "reason": "安全性", "subject_follow_up": "随访至结束"},
    )
    approve_in_meeting(final, office, Outcome.TERMINATE, "终止研究")
    trial.refresh_from_db()
    assert trial.status == Trial.Status.TERMINATED
    assert not Decision.objects.filter(submission__trial=trial).exclude(next_continuing_review_due=None).exists()


def test_continuing_review_approval_moves_the_next_due_date(routed, office):
    with time_machine.travel(datetime.datetime(2026, 1, 15, 10, tzinfo=datetime.UTC)):
        first = approve_in_meeting(routed("full_board"), office)
    assert first.next_continuing_review_due == datetime.date(2027, 1, 15)
    trial = Trial.objects.get(pk=first.submission.trial_id)
    with time_machine.travel(datetime.datetime(2026, 12, 20, 10, tzinfo=datetime.UTC)):
        report = file_report(
            trial,
            office,
            "continuing_review",
            {"enrolled_to_date": "12", "safety_summary": "无新风险", "progress": "按计划"},
        )
        second = approve_in_meeting(report, office)
    first.refresh_from_db()
    assert first.next_continuing_review_due is None
    assert second.next_continuing_review_due == datetime.date(2027, 12, 20)


def test_letter_numbers_are_consecutive_per_committee_and_restart_each_year(committee, office):
    def decide(at):
        with time_machine.travel(at):
            submission = SubmissionFactory(
                committee=committee,
                trial__lead_institution=committee.institution,
                status=Submission.Status.EXPEDITED_REVIEW,
            )
            assignment = services.reviewer_assign(submission=submission, actor=office, member=committee.members.first())
            services.opinion_record(assignment=assignment, actor=office, opinion="approve")
            return services.decision_record(submission=submission, actor=office, outcome=Outcome.APPROVE)

    numbers = [decide(datetime.datetime(2026, 12, day, 3, tzinfo=datetime.UTC)).letter_number for day in (1, 2)]
    numbers.append(decide(datetime.datetime(2027, 1, 4, 3, tzinfo=datetime.UTC)).letter_number)
    assert numbers == ["测伦审〔2026〕001号", "测伦审〔2026〕002号", "测伦审〔2027〕001号"]


# --- a meeting stays open until it is closed; an empty one can be cancelled; nothing is decided before it starts --


def test_recording_attendance_keeps_the_agenda_open_until_the_meeting_is_closed(committee, routed, meeting, office):
    first = routed("full_board")
    services.meeting_add_submission(meeting=meeting, actor=office, submission=first)
    services.meeting_record_attendance(meeting=meeting, actor=office, members=members(committee))
    assert meeting.status == Meeting.Status.HELD
    late = SubmissionFactory(committee=committee, status=Submission.Status.AWAITING_MEETING)

    item = services.meeting_add_submission(meeting=meeting, actor=office, submission=late)

    assert item.meeting == meeting and meeting.agenda.count() == 2
    services.meeting_close(meeting=meeting, actor=office)
    meeting.refresh_from_db()
    assert meeting.status == Meeting.Status.CLOSED and meeting.closed_at is not None
    other = SubmissionFactory(committee=committee, status=Submission.Status.AWAITING_MEETING)
    with pytest.raises(TransitionNotAllowed):
        services.meeting_add_submission(meeting=meeting, actor=office, submission=other)


def test_closing_defers_undecided_items_to_a_later_meeting(committee, on_agenda, office):
    meeting = on_agenda.meeting
    services.meeting_record_attendance(meeting=meeting, actor=office, members=members(committee))

    services.meeting_close(meeting=meeting, actor=office)

    submission = on_agenda.submission
    submission.refresh_from_db()
    assert submission.status == Submission.Status.AWAITING_MEETING
    assert submission.events.filter(kind="deferred").count() == 1
    with pytest.raises(TransitionNotAllowed):
        services.vote_record(agenda_item=on_agenda, actor=office, votes={members(committee)[0]: "approve"})
    with pytest.raises(DomainError) as err:
        services.decision_record(submission=submission, actor=office, outcome=Outcome.APPROVE)
    assert err.value.code == "no_meeting"
    later = services.meeting_schedule(committee=committee, actor=office, scheduled_at=timezone.now())
    assert services.meeting_add_submission(meeting=later, actor=office, submission=submission).meeting == later


def test_only_a_meeting_in_session_can_be_closed(meeting, office):
    with pytest.raises(TransitionNotAllowed):
        services.meeting_close(meeting=meeting, actor=office)
    assert Meeting.objects.get(pk=meeting.pk).status == Meeting.Status.PLANNED


def test_an_empty_held_meeting_can_be_cancelled_with_a_reason(committee, on_agenda, office):
    meeting = on_agenda.meeting
    services.meeting_record_attendance(meeting=meeting, actor=office, members=members(committee)[:2])
    with pytest.raises(DomainError) as err:
        services.meeting_cancel(meeting=meeting, actor=office, reason="  ")
    assert err.value.code == "reason_required"

    services.meeting_cancel(meeting=meeting, actor=office, reason="不足法定人数，改期")

    meeting.refresh_from_db()
    assert meeting.status == Meeting.Status.CANCELLED
    assert meeting.cancellation_reason == "不足法定人数，改期" and meeting.cancelled_at is not None
    with pytest.raises(TransitionNotAllowed):
        services.meeting_record_attendance(meeting=meeting, actor=office, members=members(committee))
    later = services.meeting_schedule(committee=committee, actor=office, scheduled_at=timezone.now())
    services.meeting_add_submission(meeting=later, actor=office, submission=on_agenda.submission)


def test_a_meeting_with_a_decision_cannot_be_cancelled(committee, on_agenda, office):
    meeting = on_agenda.meeting
    everyone = members(committee)
    services.meeting_record_attendance(meeting=meeting, actor=office, members=everyone)
    services.vote_record(agenda_item=on_agenda, actor=office, votes=dict.fromkeys(everyone, "approve"))
    services.decision_record(submission=on_agenda.submission, actor=office, outcome=Outcome.APPROVE)

    assert "cancel" not in services.meeting_available_steps(meeting, office)
    with pytest.raises(TransitionNotAllowed):
        services.meeting_cancel(meeting=meeting, actor=office, reason="误建")
    assert Meeting.objects.get(pk=meeting.pk).status == Meeting.Status.HELD
    services.meeting_close(meeting=meeting, actor=office)
    assert services.meeting_available_steps(meeting, office) == []


def test_another_institutions_office_cannot_close_or_cancel(committee, meeting):
    stranger = EthicsCommitteeFactory().institution
    outsider = UserFactory(role=Role.ETHICS_OFFICE, institution=stranger)
    with pytest.raises(DomainError):
        services.meeting_cancel(meeting=meeting, actor=outsider, reason="x")
    with pytest.raises(DomainError):
        services.meeting_close(meeting=meeting, actor=outsider)
    assert services.meeting_available_steps(meeting, outsider) == []


def test_no_vote_or_decision_before_the_meeting_starts(committee, routed, office):
    """A decision at 21:50 was accepted for a meeting set at 22:30."""
    submission = routed("full_board")
    day = timezone.localdate() + datetime.timedelta(days=2)
    start = datetime.datetime.combine(day, datetime.time(22, 30), tzinfo=SHANGHAI)

    def at(hour, minute):
        return time_machine.travel(
            datetime.datetime.combine(day, datetime.time(hour, minute), tzinfo=SHANGHAI), tick=False
        )

    with at(21, 0):
        meeting = services.meeting_schedule(committee=committee, actor=office, scheduled_at=start)
        item = services.meeting_add_submission(meeting=meeting, actor=office, submission=submission)
        everyone = members(committee)
        services.meeting_record_attendance(meeting=meeting, actor=office, members=everyone)
    with at(21, 50):
        with pytest.raises(DomainError) as err:
            services.vote_record(agenda_item=item, actor=office, votes=dict.fromkeys(everyone, "approve"))
        assert err.value.code == "meeting_not_started" and f"{day:%Y-%m-%d} 22:30" in str(err.value)
    with at(22, 35):
        services.vote_record(agenda_item=item, actor=office, votes=dict.fromkeys(everyone, "approve"))
    with at(22, 29):
        with pytest.raises(DomainError) as err:
            services.decision_record(submission=submission, actor=office, outcome=Outcome.APPROVE)
        assert err.value.code == "meeting_not_started"
    assert not Decision.objects.filter(submission=submission).exists()
    with at(22, 40):
        decision = services.decision_record(submission=submission, actor=office, outcome=Outcome.APPROVE)
    assert decision.decided_at >= start
