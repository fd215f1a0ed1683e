"""The applicant side is told of each step of its submission: returned (with what is missing), accepted, routed,
decided (outcome and letter), modifications requested. The trial's PI and the submitter get the portal page, the
lead institution's research office the admin page; each person once per event, in their own language."""

import pytest
from django.urls import reverse

from cgtclinic.errors import TransitionNotAllowed
from cgtclinic.models import Notification
from cgtclinic.roles import Role
from ethics import services
from ethics.models import Decision
from tests.factories.cgtclinic import UserFactory

Outcome = Decision.Outcome
pytestmark = pytest.mark.django_db


@pytest.fixture
def research_staff(institution):
    """The lead institution's research office, and one at another hospital who must hear nothing."""
    return UserFactory(role=Role.RESEARCH_OFFICE, institution=institution), UserFactory(role=Role.RESEARCH_OFFICE)


def received(topic):
    return {n.recipient: n for n in Notification.objects.filter(topic=topic).select_related("recipient")}


def portal(submission):
    return reverse("ethics_portal:submission_detail", args=[submission.pk])


def admin_page(submission):
    return reverse("admin:ethics_submission_change", args=[submission.pk])


def test_returned_application_tells_the_pi_and_research_office_what_is_missing(
    complete_initial, office, research_staff
):
    ours, theirs = research_staff
    pi = complete_initial.trial.pi
    submission = services.submission_submit(submission=complete_initial, actor=pi)

    services.submission_return_incomplete(submission=submission, actor=office, items=["主要研究者签字页", "保险凭证"])

    notices = received("submission.returned")
    assert set(notices) == {pi, ours}
    assert theirs not in notices and office not in notices
    assert notices[pi].link == portal(submission)
    assert notices[ours].link == admin_page(submission)
    for notice in notices.values():
        assert "主要研究者签字页" in notice.body and "保险凭证" in notice.body
        assert submission.reference in notice.subject


def test_each_return_is_told_once(complete_initial, office, research_staff):
    pi = complete_initial.trial.pi
    submission = services.submission_submit(submission=complete_initial, actor=pi)
    services.submission_return_incomplete(submission=submission, actor=office, items=["签字页"])
    services.submission_submit(submission=submission, actor=pi)
    services.submission_return_incomplete(submission=submission, actor=office, items=["保险凭证"])

    bodies = list(Notification.objects.filter(topic="submission.returned", recipient=pi).values_list("body", flat=True))
    assert len(bodies) == 2
    assert any("签字页" in body for body in bodies) and any("保险凭证" in body for body in bodies)


def test_accepted_and_routed_are_told_to_the_applicant_side(complete_initial, office, research_staff):
    ours, _theirs = research_staff
    pi = complete_initial.trial.pi
    submission = services.submission_submit(submission=complete_initial, actor=pi)

    services.submission_accept(submission=submission, actor=office)
    services.submission_route(submission=submission, actor=office, review_type="expedited", reason="风险不大于最小风险")

    assert set(received("submission.accepted")) == {pi, ours}
    routed = received("submission.routed")
    assert set(routed) == {pi, ours}
    assert "风险不大于最小风险" in routed[pi].body


def test_the_pi_who_is_also_the_submitter_is_told_once(complete_initial, office):
    pi = complete_initial.trial.pi
    assert complete_initial.submitted_by == pi
    submission = services.submission_submit(submission=complete_initial, actor=pi)

    services.submission_accept(submission=submission, actor=office)

    assert Notification.objects.filter(recipient=pi, topic="submission.accepted").count() == 1


def test_decision_asking_for_modifications_tells_outcome_letter_and_what_to_change(
    routed, office, committee, research_staff
):
    ours, theirs = research_staff
    submission = routed("expedited")
    reviewer = committee.members.first()
    assignment = services.reviewer_assign(submission=submission, actor=office, member=reviewer)
    services.opinion_record(assignment=assignment, actor=office, opinion="approve_after_modification")

    decision = services.decision_record(
        submission=submission,
        actor=office,
        outcome=Outcome.APPROVE_AFTER_MODIFICATION,
        requested_modifications="知情同意书第3页补充退出条款。",
    )

    pi = submission.trial.pi
    decided = received("submission.decided")
    asked = received("submission.modifications_requested")
    assert set(decided) == set(asked) == {pi, ours}
    assert theirs not in decided
    assert decision.letter_number in decided[pi].body and decision.letter_number in asked[ours].body
    assert "修改后同意" in decided[pi].subject
    assert "知情同意书第3页补充退出条款。" in asked[pi].body
    assert asked[pi].link == portal(submission) and asked[ours].link == admin_page(submission)


def test_an_approval_is_told_but_asks_for_nothing(routed, office, committee):
    submission = routed("expedited")
    assignment = services.reviewer_assign(submission=submission, actor=office, member=committee.members.first())
    services.opinion_record(assignment=assignment, actor=office, opinion="approve")

    services.decision_record(submission=submission, actor=office, outcome=Outcome.APPROVE)

    assert submission.trial.pi in received("submission.decided")
    assert not Notification.objects.filter(topic="submission.modifications_requested").exists()


def test_each_person_reads_it_in_their_language(complete_initial, office, institution):
    english = UserFactory(role=Role.RESEARCH_OFFICE, institution=institution, language="en")
    chinese = UserFactory(role=Role.RESEARCH_OFFICE, institution=institution, language="zh-hans")
    submission = services.submission_submit(submission=complete_initial, actor=complete_initial.trial.pi)

    services.submission_accept(submission=submission, actor=office)

    notices = received("submission.accepted")
    assert notices[english].subject == f"{submission.reference} accepted for review"
    assert notices[chinese].subject == f"{submission.reference} 已受理，待分配审查方式"
    trial = submission.trial
    assert trial.title_en in notices[english].body and trial.title_zh not in notices[english].body
    assert trial.title_zh in notices[chinese].body and trial.title_en not in notices[chinese].body


def test_the_message_names_the_protocol_once(complete_initial, office):
    """The trial's name in the body is its title: the protocol number is in the message already."""
    pi = complete_initial.trial.pi
    submission = services.submission_submit(submission=complete_initial, actor=pi)

    services.submission_accept(submission=submission, actor=office)

    body = Notification.objects.get(topic="submission.accepted", recipient=pi).body
    assert body.count(submission.trial.protocol_number) == 1, body


def test_a_refused_step_tells_no_one(complete_initial, office):
    with pytest.raises(TransitionNotAllowed):
        services.submission_accept(submission=complete_initial, actor=office)
    assert not Notification.objects.exists()
