"""The ethics office works a submission from intake to decision on its admin page; each button calls one service."""

import pytest
from django.urls import reverse

from cgtclinic.roles import Role
from ethics import services
from ethics.models import Decision, ReviewAssignment, Submission, SubmissionEvent
from tests.factories.cgtclinic import UserFactory
from tests.factories.ethics import CommitteeMemberFactory, SubmissionFactory

S = Submission.Status
pytestmark = pytest.mark.django_db


def step_url(submission, step):
    return reverse("admin:ethics_submission_step", args=[submission.pk, step])


def change_url(submission):
    return reverse("admin:ethics_submission_change", args=[submission.pk])


@pytest.fixture
def submitted(complete_initial):
    return services.submission_submit(submission=complete_initial, actor=complete_initial.trial.pi)


@pytest.fixture
def expedited(routed):
    return routed("expedited")


def snapshot(submission):
    submission.refresh_from_db()
    return submission.status, submission.events.count(), submission.assignments.count()


def test_list_shows_the_office_its_committees_submissions_with_waiting_days(client, office, submitted):
    elsewhere = SubmissionFactory(status=S.SUBMITTED, reference="他院受〔2026〕00001")
    client.force_login(office)
    response = client.get(reverse("admin:ethics_submission_changelist"))
    content = response.content.decode()
    assert response.status_code == 200
    assert submitted.reference in content and elsewhere.reference not in content
    assert "column-waiting_days" in content
    filtered = client.get(reverse("admin:ethics_submission_changelist"), {"status__exact": S.DECIDED})
    assert submitted.reference not in filtered.content.decode()
    searched = client.get(reverse("admin:ethics_submission_changelist"), {"q": submitted.trial.protocol_number})
    assert submitted.reference in searched.content.decode()


def test_change_page_is_read_only_with_the_steps_valid_now(client, office, submitted):
    client.force_login(office)
    page = client.get(change_url(submitted)).content.decode()
    assert step_url(submitted, "accept") in page and step_url(submitted, "return") in page
    assert step_url(submitted, "route") not in page and step_url(submitted, "decide") not in page
    assert 'name="_save"' not in page
    assert client.post(change_url(submitted), {"status": S.DECIDED}).status_code == 403
    submitted.refresh_from_db()
    assert submitted.status == S.SUBMITTED


def test_accept_runs_the_service(client, office, submitted):
    client.force_login(office)
    response = client.post(step_url(submitted, "accept"))
    assert response.status_code == 302
    submitted.refresh_from_db()
    assert submitted.status == S.ACCEPTED
    assert submitted.events.get(kind=SubmissionEvent.Kind.ACCEPTED).actor == office


def test_a_step_from_the_wrong_state_is_refused_on_the_form_and_changes_nothing(client, office, expedited):
    client.force_login(office)
    before = snapshot(expedited)
    response = client.post(step_url(expedited, "accept"))
    assert response.status_code == 200
    assert response.context["form"].non_field_errors()
    assert snapshot(expedited) == before


def test_return_is_prefilled_with_the_missing_items(client, office, committee, trial):
    incomplete = SubmissionFactory(trial=trial, committee=committee, status=S.SUBMITTED, summary="")
    client.force_login(office)
    form = client.get(step_url(incomplete, "return")).context["form"]
    expected = services.missing_items(incomplete)
    assert expected and form.initial["items"] == "\n".join(expected)

    response = client.post(step_url(incomplete, "return"), {"items": "  \n "})
    assert response.status_code == 200 and response.context["form"].errors
    incomplete.refresh_from_db()
    assert incomplete.status == S.SUBMITTED

    response = client.post(step_url(incomplete, "return"), {"items": "缺少研究方案\n\n缺少知情同意书"})
    assert response.status_code == 302
    incomplete.refresh_from_db()
    assert incomplete.status == S.RETURNED
    assert incomplete.missing_items == ["缺少研究方案", "缺少知情同意书"]


def test_route_needs_a_reason_and_records_it(client, office, submitted):
    services.submission_accept(submission=submitted, actor=office)
    client.force_login(office)
    page = client.get(change_url(submitted)).content.decode()
    assert step_url(submitted, "route") in page and step_url(submitted, "acknowledge") not in page

    response = client.post(step_url(submitted, "route"), {"review_type": "expedited", "reason": ""})
    assert response.status_code == 200 and "reason" in response.context["form"].errors
    response = client.post(step_url(submitted, "route"), {"review_type": "expedited", "reason": "风险不大于最小风险"})
    assert response.status_code == 302
    submitted.refresh_from_db()
    assert (submitted.status, submitted.review_type, submitted.routing_reason) == (
        S.EXPEDITED_REVIEW,
        "expedited",
        "风险不大于最小风险",
    )


def test_refer_to_meeting(client, office, expedited):
    client.force_login(office)
    response = client.post(step_url(expedited, "refer"), {"reason": "主审委员建议会议审查"})
    assert response.status_code == 302
    expedited.refresh_from_db()
    assert expedited.status == S.AWAITING_MEETING and expedited.review_type == "full_board"


def test_acknowledge_is_offered_for_reports_only(client, office, committee, trial, submitted):
    report = SubmissionFactory(trial=trial, committee=committee, kind=Submission.Kind.SAE, status=S.ACCEPTED)
    services.submission_accept(submission=submitted, actor=office)
    client.force_login(office)
    assert step_url(report, "acknowledge") in client.get(change_url(report)).content.decode()
    assert step_url(submitted, "acknowledge") not in client.get(change_url(submitted)).content.decode()

    refused = client.post(step_url(submitted, "acknowledge"), {"note": ""})
    assert refused.status_code == 200 and refused.context["form"].non_field_errors()
    submitted.refresh_from_db()
    assert submitted.status == S.ACCEPTED

    response = client.post(step_url(report, "acknowledge"), {"note": "预期内不良事件，已妥善处理"})
    assert response.status_code == 302
    report.refresh_from_db()
    assert report.status == S.ACKNOWLEDGED


def test_assign_a_current_member_and_refuse_a_second_assignment(client, office, committee, expedited):
    member = committee.members.order_by("id").first()
    outsider = CommitteeMemberFactory()
    former = CommitteeMemberFactory(committee=committee, is_active=False)
    client.force_login(office)
    choices = client.get(step_url(expedited, "assign")).context["form"].fields["member"].queryset
    assert member in choices and outsider not in choices and former not in choices

    assert client.post(step_url(expedited, "assign"), {"member": member.pk}).status_code == 302
    response = client.post(step_url(expedited, "assign"), {"member": member.pk})
    assert response.status_code == 200 and "member" in response.context["form"].errors
    response = client.post(step_url(expedited, "assign"), {"member": outsider.pk})
    assert response.status_code == 200 and "member" in response.context["form"].errors
    assert list(expedited.assignments.values_list("member", flat=True)) == [member.pk]


def test_record_opinion_per_assignment_and_see_it_inline(client, office, committee, expedited):
    assignment = services.reviewer_assign(
        submission=expedited, actor=office, member=committee.members.order_by("id").first()
    )
    url = reverse("admin:ethics_submission_opinion", args=[expedited.pk, assignment.pk])
    client.force_login(office)
    assert url in client.get(change_url(expedited)).content.decode()

    response = client.post(
        url,
        {
            "opinion": ReviewAssignment.Opinion.APPROVE_AFTER_MODIFICATION,
            "risk_benefit_comment": "风险可控",
            "consent_comment": "知情同意书需补充随访安排",
            "other_comment": "",
        },
    )
    assert response.status_code == 302
    assignment.refresh_from_db()
    assert assignment.opinion == ReviewAssignment.Opinion.APPROVE_AFTER_MODIFICATION
    assert assignment.consent_comment == "知情同意书需补充随访安排" and assignment.recorded_at
    assert "知情同意书需补充随访安排" in client.get(change_url(expedited)).content.decode()

    response = client.post(url, {"opinion": "bogus"})
    assert response.status_code == 200 and "opinion" in response.context["form"].errors


def test_decision_refusals_show_on_the_form_then_the_decision_issues_its_letter(client, office, committee, expedited):
    client.force_login(office)
    before = snapshot(expedited)
    response = client.post(step_url(expedited, "decide"), {"outcome": "approve", "requested_modifications": ""})
    assert response.status_code == 200 and response.context["form"].non_field_errors()  # no opinions yet
    assert snapshot(expedited) == before

    assignment = services.reviewer_assign(
        submission=expedited, actor=office, member=committee.members.order_by("id").first()
    )
    services.opinion_record(assignment=assignment, actor=office, opinion="approve")
    response = client.post(step_url(expedited, "decide"), {"outcome": "disapprove", "requested_modifications": "理由"})
    assert response.status_code == 200 and "outcome" in response.context["form"].errors
    response = client.post(
        step_url(expedited, "decide"), {"outcome": "approve_after_modification", "requested_modifications": ""}
    )
    assert response.status_code == 200 and "requested_modifications" in response.context["form"].errors
    assert not Decision.objects.exists()

    response = client.post(step_url(expedited, "decide"), {"outcome": "approve", "requested_modifications": ""})
    assert response.status_code == 302
    decision = Decision.objects.get(submission=expedited)
    assert decision.letter_number.startswith("测伦审") and decision.letter_sha256
    page = client.get(change_url(expedited)).content.decode()
    assert decision.letter_number in page
    assert str(SubmissionEvent.Kind.LETTER_ISSUED.label) in page


def test_another_institutions_office_gets_not_found(client, submitted):
    stranger = UserFactory(role=Role.ETHICS_OFFICE)
    client.force_login(stranger)
    assert client.get(change_url(submitted)).status_code in (302, 404)
    assert client.post(step_url(submitted, "accept")).status_code == 404
    submitted.refresh_from_db()
    assert submitted.status == S.SUBMITTED


def test_research_office_sees_its_submissions_without_workflow_buttons(client, research_office, submitted):
    client.force_login(research_office)
    page = client.get(change_url(submitted))
    assert page.status_code == 200
    assert step_url(submitted, "accept") not in page.content.decode()
    assert client.post(step_url(submitted, "accept")).status_code == 403
    submitted.refresh_from_db()
    assert submitted.status == S.SUBMITTED


@pytest.mark.parametrize("role", [Role.PI, Role.REGULATOR])
def test_pis_and_regulators_have_no_ethics_admin(client, role, submitted):
    user = submitted.trial.pi if role == Role.PI else UserFactory(role=role)
    client.force_login(user)
    for url in (reverse("admin:ethics_submission_changelist"), step_url(submitted, "accept")):
        response = client.get(url)
        assert response.status_code == 302 and reverse("admin:login") in response["Location"]


@pytest.mark.parametrize("size", [2, 12])
def test_submission_list_queries_do_not_grow_with_rows(client, office, committee, size, django_assert_max_num_queries):
    SubmissionFactory.create_batch(size, committee=committee, trial__lead_institution=committee.institution)
    client.force_login(office)
    # 7 for the list, 1 for the unread count in the header (cgtclinic.context_processors).
    with django_assert_max_num_queries(8):
        response = client.get(reverse("admin:ethics_submission_changelist"))
    assert len(response.context["cl"].result_list) == size


@pytest.mark.parametrize("status", list(S))
def test_buttons_are_the_steps_the_services_table_allows(client, office, committee, trial, status):
    submission = SubmissionFactory(trial=trial, committee=committee, status=status, kind=Submission.Kind.SAE)
    client.force_login(office)
    page = client.get(change_url(submission)).content.decode()
    allowed = set(services.available_steps(submission, office))
    if allowed & {"route_full_board", "route_expedited"}:
        allowed.add("route")
    for step in ("accept", "return", "route", "refer", "acknowledge", "assign", "decide"):
        assert (step_url(submission, step) in page) == (step in allowed), step
