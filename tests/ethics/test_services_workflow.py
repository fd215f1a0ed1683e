"""The submission state machine: applicant steps, intake, routing, expedited review and its decisions."""

import pytest

from cgtclinic.errors import DomainError, TransitionNotAllowed
from cgtclinic.roles import Role
from ethics import services
from ethics.models import Decision, Submission, SubmissionEvent
from tests.factories.cgtclinic import UserFactory
from tests.factories.ethics import CommitteeMemberFactory, DecisionFactory, SubmissionFactory
from trials.models import Trial

S = Submission.Status
Outcome = Decision.Outcome
pytestmark = pytest.mark.django_db


def test_incomplete_submission_lists_every_missing_item_and_changes_nothing(trial):
    draft = services.submission_create(actor=trial.pi, trial=trial, kind=Submission.Kind.INITIAL)
    with pytest.raises(DomainError) as err:
        services.submission_submit(submission=draft, actor=trial.pi)
    assert err.value.code == "incomplete"
    missing = services.missing_items(draft)
    # summary + five documents + four declarations
    assert len(missing) == 1 + len(services.INITIAL_REQUIRED_DOCUMENTS) + len(services.DECLARATIONS)
    for item in missing:
        assert item in str(err.value)
    draft.refresh_from_db()
    assert draft.status == S.DRAFT
    trial.refresh_from_db()
    assert trial.status == Trial.Status.DRAFT


def test_complete_submission_is_submitted_with_reference_and_moves_the_trial(complete_initial):
    submission = services.submission_submit(submission=complete_initial, actor=complete_initial.trial.pi)
    assert submission.status == S.SUBMITTED
    assert submission.reference.startswith("测伦审受〔")
    assert submission.submitted_at is not None
    assert Trial.objects.get(pk=submission.trial_id).status == Trial.Status.SUBMITTED
    kinds = list(submission.events.values_list("kind", flat=True))
    assert kinds == [SubmissionEvent.Kind.CREATED, SubmissionEvent.Kind.SUBMITTED]


def test_return_incomplete_then_resubmit_keeps_the_first_submission_time(complete_initial, office):
    submission = services.submission_submit(submission=complete_initial, actor=complete_initial.trial.pi)
    first_time = submission.submitted_at
    services.submission_return_incomplete(submission=submission, actor=office, items=["缺少研究者简历签字页"])
    submission.refresh_from_db()
    assert submission.status == S.RETURNED and submission.missing_items == ["缺少研究者简历签字页"]
    again = services.submission_submit(submission=submission, actor=submission.trial.pi)
    assert again.status == S.SUBMITTED and again.submitted_at == first_time and again.missing_items == []


def test_return_needs_the_missing_items(complete_initial, office):
    submission = services.submission_submit(submission=complete_initial, actor=complete_initial.trial.pi)
    with pytest.raises(DomainError):
        services.submission_return_incomplete(submission=submission, actor=office, items=[" "])


def test_accept_moves_trial_under_review_and_routing_needs_a_reason(complete_initial, office):
    submission = services.submission_submit(submission=complete_initial, actor=complete_initial.trial.pi)
    services.submission_accept(submission=submission, actor=office)
    assert Trial.objects.get(pk=submission.trial_id).status == Trial.Status.UNDER_REVIEW
    with pytest.raises(DomainError):
        services.submission_route(submission=submission, actor=office, review_type="full_board", reason="")
    with pytest.raises(DomainError):
        services.submission_route(submission=submission, actor=office, review_type="nonsense", reason="x")
    routed = services.submission_route(submission=submission, actor=office, review_type="full_board", reason="首次审查")
    assert routed.status == S.AWAITING_MEETING and routed.routing_reason == "首次审查"


@pytest.mark.parametrize(
    ("step", "kwargs"),
    [
        (services.submission_accept, {}),
        (services.submission_route, {"review_type": "expedited", "reason": "x"}),
        (services.submission_return_incomplete, {"items": ["x"]}),
    ],
)
def test_office_steps_refused_from_draft(step, kwargs, complete_initial, office):
    with pytest.raises(TransitionNotAllowed):
        step(submission=complete_initial, actor=office, **kwargs)
    complete_initial.refresh_from_db()
    assert complete_initial.status == S.DRAFT


def test_other_institutions_ethics_office_and_pi_cannot_take_office_steps(complete_initial):
    submission = services.submission_submit(submission=complete_initial, actor=complete_initial.trial.pi)
    for actor in (UserFactory(role=Role.ETHICS_OFFICE), submission.trial.pi):
        with pytest.raises(DomainError) as err:
            services.submission_accept(submission=submission, actor=actor)
        assert err.value.code == "permission_denied"


def test_another_pi_cannot_file_for_the_trial(trial):
    stranger = UserFactory(role=Role.PI, institution=trial.lead_institution)
    with pytest.raises(DomainError):
        services.submission_create(actor=stranger, trial=trial, kind=Submission.Kind.INITIAL)


def test_one_initial_application_per_committee(complete_initial):
    with pytest.raises(DomainError):
        services.submission_create(actor=complete_initial.trial.pi, trial=complete_initial.trial, kind="initial")


def test_reports_only_for_an_approved_study(trial):
    with pytest.raises(DomainError):
        services.submission_create(actor=trial.pi, trial=trial, kind=Submission.Kind.SAE)


def test_expedited_approval_needs_all_opinions_and_sets_validity(routed, office, committee):
    submission = routed("expedited")
    reviewer = committee.members.first()
    assignment = services.reviewer_assign(submission=submission, actor=office, member=reviewer)
    with pytest.raises(DomainError) as err:
        services.decision_record(submission=submission, actor=office, outcome=Outcome.APPROVE)
    assert err.value.code == "opinions_missing"
    services.opinion_record(assignment=assignment, actor=office, opinion="approve", risk_benefit_comment="风险可控")
    decision = services.decision_record(submission=submission, actor=office, outcome=Outcome.APPROVE)
    assert decision.letter_number.startswith(f"测伦审〔{decision.decided_at.year}〕001")
    assert decision.valid_until is not None and decision.next_continuing_review_due is not None
    trial = Trial.objects.get(pk=submission.trial_id)
    assert trial.status == Trial.Status.APPROVED
    assert trial.sites.get(role="lead").ethics_approved_on is not None
    kinds = set(submission.events.values_list("kind", flat=True))
    assert {"created", "submitted", "accepted", "routed", "reviewer_assigned", "opinion_recorded", "decided"} <= kinds


def test_expedited_review_cannot_disapprove(routed, office, committee):
    submission = routed("expedited")
    assignment = services.reviewer_assign(submission=submission, actor=office, member=committee.members.first())
    services.opinion_record(assignment=assignment, actor=office, opinion="disapprove")
    with pytest.raises(DomainError):
        services.decision_record(
            submission=submission, actor=office, outcome=Outcome.DISAPPROVE, requested_modifications="x"
        )
    referred = services.submission_refer_to_meeting(submission=submission, actor=office, reason="审查意见为不同意")
    assert referred.status == S.AWAITING_MEETING


def test_reviewer_must_be_a_current_member_of_the_committee(routed, office):
    submission = routed("expedited")
    with pytest.raises(DomainError):
        services.reviewer_assign(submission=submission, actor=office, member=CommitteeMemberFactory())
    member = submission.committee.members.first()
    services.reviewer_assign(submission=submission, actor=office, member=member)
    with pytest.raises(DomainError):
        services.reviewer_assign(submission=submission, actor=office, member=member)


def test_reviewer_with_an_account_records_own_opinion_but_not_others(routed, office, committee):
    submission = routed("expedited")
    member_a, member_b = committee.members.all()[:2]
    member_a.user = UserFactory(role=Role.ETHICS_OFFICE, institution=committee.institution)
    member_a.save()
    stranger = UserFactory(role=Role.PI)
    assignment_a = services.reviewer_assign(submission=submission, actor=office, member=member_a)
    assignment_b = services.reviewer_assign(submission=submission, actor=office, member=member_b)
    services.opinion_record(assignment=assignment_a, actor=member_a.user, opinion="approve")
    with pytest.raises(DomainError):
        services.opinion_record(assignment=assignment_b, actor=stranger, opinion="approve")


def test_modifications_requested_need_text_and_allow_a_response(routed, office, committee):
    submission = routed("expedited")
    assignment = services.reviewer_assign(submission=submission, actor=office, member=committee.members.first())
    services.opinion_record(assignment=assignment, actor=office, opinion="approve_after_modification")
    with pytest.raises(DomainError):
        services.decision_record(submission=submission, actor=office, outcome=Outcome.APPROVE_AFTER_MODIFICATION)
    services.decision_record(
        submission=submission,
        actor=office,
        outcome=Outcome.APPROVE_AFTER_MODIFICATION,
        requested_modifications="知情同意书补充费用说明",
    )
    assert Trial.objects.get(pk=submission.trial_id).status == Trial.Status.UNDER_REVIEW
    response = services.submission_create(
        actor=submission.trial.pi,
        trial=submission.trial,
        kind="modification_response",
        responds_to=submission,
    )
    assert response.responds_to == submission


def test_response_to_an_approval_is_refused(trial):
    decided = DecisionFactory(submission=SubmissionFactory(trial=trial, status=S.DECIDED)).submission
    with pytest.raises(DomainError):
        services.submission_create(actor=trial.pi, trial=trial, kind="modification_response", responds_to=decided)


def test_withdraw_needs_a_reason_and_is_refused_after_decision(complete_initial):
    with pytest.raises(DomainError):
        services.submission_withdraw(submission=complete_initial, actor=complete_initial.trial.pi, reason="")
    services.submission_withdraw(submission=complete_initial, actor=complete_initial.trial.pi, reason="方案调整")
    complete_initial.refresh_from_db()
    assert complete_initial.status == S.WITHDRAWN
    with pytest.raises(TransitionNotAllowed):
        services.submission_withdraw(submission=complete_initial, actor=complete_initial.trial.pi, reason="again")


def test_reports_can_be_acknowledged_applications_cannot(trial, office, committee):
    DecisionFactory(submission=SubmissionFactory(trial=trial, committee=committee, status=S.DECIDED))
    sae = services.submission_create(
        actor=trial.pi,
        trial=trial,
        kind="sae",
        summary="SAE 报告",
        details={"event_date": "2026-10-01", "description": "CRS 3级", "causality": "肯定有关", "outcome": "好转"},
    )
    sae = services.submission_submit(submission=sae, actor=trial.pi)
    services.submission_accept(submission=sae, actor=office)
    acknowledged = services.submission_acknowledge(submission=sae, actor=office, note="已知悉")
    assert acknowledged.status == S.ACKNOWLEDGED
    initial = SubmissionFactory(trial=trial, committee=committee, kind="amendment", status=S.ACCEPTED)
    with pytest.raises(DomainError):
        services.submission_acknowledge(submission=initial, actor=office)


def test_report_details_are_required(trial, committee):
    DecisionFactory(submission=SubmissionFactory(trial=trial, committee=committee, status=S.DECIDED))
    deviation = services.submission_create(actor=trial.pi, trial=trial, kind="deviation", summary="偏离")
    missing = services.missing_items(deviation)
    assert len(missing) == len(services.REPORT_FIELDS["deviation"])


# --- one transitions table: the services refuse exactly what it leaves out ------------------------------------------

STEP_CALLS = {
    "accept": lambda sub, office: services.submission_accept(submission=sub, actor=office),
    "return": lambda sub, office: services.submission_return_incomplete(submission=sub, actor=office, items=["x"]),
    "route_full_board": lambda sub, office: services.submission_route(
        submission=sub, actor=office, review_type="full_board", reason="r"
    ),
    "route_expedited": lambda sub, office: services.submission_route(
        submission=sub, actor=office, review_type="expedited", reason="r"
    ),
    "refer": lambda sub, office: services.submission_refer_to_meeting(submission=sub, actor=office, reason="r"),
    "acknowledge": lambda sub, office: services.submission_acknowledge(submission=sub, actor=office),
    "withdraw": lambda sub, office: services.submission_withdraw(submission=sub, actor=sub.trial.pi, reason="r"),
}


@pytest.mark.parametrize("status", list(S))
@pytest.mark.parametrize("step", list(STEP_CALLS))
def test_services_allow_exactly_the_steps_in_the_transitions_table(trial, committee, office, status, step):
    submission = SubmissionFactory(
        trial=trial, committee=committee, status=status, kind=Submission.Kind.SAE, reference="测伦审受〔2026〕00009"
    )
    expected = services.ALLOWED.get(status, {}).get(step)
    if expected is None:
        with pytest.raises(TransitionNotAllowed):
            STEP_CALLS[step](submission, office)
        submission.refresh_from_db()
        assert submission.status == status
    else:
        STEP_CALLS[step](submission, office)
        submission.refresh_from_db()
        assert submission.status == expected


def test_available_steps_depend_on_who_asks(trial, committee, office):
    submitted = SubmissionFactory(trial=trial, committee=committee, status=S.SUBMITTED)
    assert services.available_steps(submitted, office) == ["accept", "return"]
    assert services.available_steps(submitted, trial.pi) == ["withdraw"]
    assert services.available_steps(submitted, UserFactory(role=Role.ETHICS_OFFICE)) == []
    draft = SubmissionFactory(trial=trial, committee=committee, status=S.DRAFT)
    assert services.available_steps(draft, trial.pi) == ["edit", "submit", "withdraw"]
    assert services.available_steps(draft, office) == []
    application = SubmissionFactory(trial=trial, committee=committee, status=S.EXPEDITED_REVIEW)
    assert "acknowledge" not in services.available_steps(application, office)
    report = SubmissionFactory(trial=trial, committee=committee, status=S.EXPEDITED_REVIEW, kind=Submission.Kind.SAE)
    assert "acknowledge" in services.available_steps(report, office)
    assert services.available_steps(SubmissionFactory(trial=trial, committee=committee, status=S.DECIDED), office) == []
