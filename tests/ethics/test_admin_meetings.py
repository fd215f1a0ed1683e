"""Meetings in the admin: schedule, agenda, attendance and quorum, conflicts and recusal, votes, decisions."""

import pytest
from django.urls import reverse
from django.utils import timezone

from cgtclinic.roles import Role
from ethics import services
from ethics.models import AgendaItem, ConflictOfInterest, Decision, Meeting, Submission, Vote
from tests.factories.cgtclinic import UserFactory
from tests.factories.ethics import EthicsCommitteeFactory

pytestmark = pytest.mark.django_db


def url(name, meeting, *args):
    return reverse(f"admin:ethics_meeting_{name}", args=[meeting.pk, *args])


@pytest.fixture
def meeting(committee, office):
    return services.meeting_schedule(committee=committee, actor=office, scheduled_at=timezone.now(), location="会议室")


@pytest.fixture
def item(routed, meeting, office):
    return services.meeting_add_submission(meeting=meeting, actor=office, submission=routed("full_board"))


def by_role(committee):
    """chair (m), vice chair (f), lawyer (m, external), lay member (f, external), then three medical members."""
    return list(committee.members.order_by("id"))


def test_office_schedules_a_meeting_for_its_own_committee_only(client, office, committee):
    other = EthicsCommitteeFactory()
    client.force_login(office)
    form = {"committee": other.pk, "scheduled_at_0": "2026-05-20", "scheduled_at_1": "14:00", "location": "三楼"}
    response = client.post(reverse("admin:ethics_meeting_add"), form)
    assert response.status_code == 200 and "committee" in response.context["adminform"].form.errors
    assert not Meeting.objects.exists()

    response = client.post(reverse("admin:ethics_meeting_add"), {**form, "committee": committee.pk})
    assert response.status_code == 302
    meeting = Meeting.objects.get()
    assert (meeting.committee, meeting.status, meeting.location) == (committee, Meeting.Status.PLANNED, "三楼")
    assert meeting.history.first().history_user == office


def test_agenda_offers_submissions_awaiting_a_meeting(client, office, meeting, routed):
    waiting = routed("full_board")
    client.force_login(office)
    choices = client.get(url("agenda_add", meeting)).context["form"].fields["submission"].queryset
    assert list(choices) == [waiting]
    response = client.post(url("agenda_add", meeting), {"submission": waiting.pk})
    assert response.status_code == 302
    assert AgendaItem.objects.get(meeting=meeting).submission == waiting
    assert waiting.reference in client.get(reverse("admin:ethics_meeting_change", args=[meeting.pk])).content.decode()

    again = client.post(url("agenda_add", meeting), {"submission": waiting.pk})
    assert again.status_code == 200 and again.context["form"].errors
    assert AgendaItem.objects.count() == 1


def test_attendance_shows_whether_quorum_is_met_and_why(client, office, committee, meeting):
    members = by_role(committee)
    client.force_login(office)
    form = client.get(url("attendance", meeting)).context["form"]
    assert set(form.fields["members"].queryset) == set(members)

    response = client.post(url("attendance", meeting), {"members": [m.pk for m in members[4:]]}, follow=True)
    text = " ".join(str(m) for m in response.context["messages"])
    meeting.refresh_from_db()
    assert meeting.status == Meeting.Status.HELD and meeting.quorum_met is False
    assert meeting.quorum_note in text
    assert meeting.quorum_note in response.content.decode()

    response = client.post(url("attendance", meeting), {"members": [m.pk for m in members]}, follow=True)
    meeting.refresh_from_db()
    assert meeting.quorum_met is True and meeting.attendance.count() == 7


def test_recused_member_is_left_out_of_the_vote_and_of_the_items_quorum(client, office, committee, meeting, item):
    chair, vice, lawyer, lay, *_rest = by_role(committee)
    services.meeting_record_attendance(meeting=meeting, actor=office, members=[chair, vice, lawyer, lay])
    client.force_login(office)
    response = client.post(url("conflict", meeting, item.pk), {"member": lawyer.pk, "description": "为申办方法律顾问"})
    assert response.status_code == 302
    assert ConflictOfInterest.objects.get(agenda_item=item).member == lawyer

    page = client.get(reverse("admin:ethics_meeting_change", args=[meeting.pk])).content.decode()
    assert "为申办方法律顾问" in page
    assert services.quorum_check(meeting=meeting, agenda_item=item).explanation in page

    votes_page = client.get(url("votes", meeting, item.pk))
    assert f"member_{lawyer.pk}" not in votes_page.context["form"].fields
    assert not votes_page.context["quorum"].met and votes_page.context["quorum"].present == 3

    response = client.post(url("votes", meeting, item.pk), {f"member_{m.pk}": "approve" for m in (chair, vice, lay)})
    assert response.status_code == 200 and response.context["form"].non_field_errors()
    assert not Vote.objects.exists()


def test_declaring_a_conflict_needs_a_description(client, office, committee, meeting, item):
    client.force_login(office)
    response = client.post(url("conflict", meeting, item.pk), {"member": by_role(committee)[0].pk, "description": " "})
    assert response.status_code == 200 and "description" in response.context["form"].errors
    assert not ConflictOfInterest.objects.exists()


def test_vote_then_decide_from_the_meeting(client, office, committee, meeting, item):
    members = by_role(committee)
    services.meeting_record_attendance(meeting=meeting, actor=office, members=members)
    services.conflict_declare(agenda_item=item, actor=office, member=members[-1], description="合作研究者")
    client.force_login(office)
    votes = {f"member_{m.pk}": "approve" for m in members[:5]}
    votes[f"member_{members[5].pk}"] = "disapprove"
    response = client.post(url("votes", meeting, item.pk), votes)
    assert response.status_code == 302
    assert Vote.objects.filter(agenda_item=item).count() == 6

    refused = client.post(url("decide", meeting, item.pk), {"outcome": "disapprove", "requested_modifications": "x"})
    assert refused.status_code == 200 and "outcome" in refused.context["form"].errors
    assert not Decision.objects.exists()

    response = client.post(url("decide", meeting, item.pk), {"outcome": "approve", "requested_modifications": ""})
    assert response.status_code == 302
    decision = Decision.objects.get(submission=item.submission)
    assert (decision.meeting, decision.votes_for, decision.votes_against) == (meeting, 5, 1)
    item.submission.refresh_from_db()
    assert item.submission.status == Submission.Status.DECIDED
    page = client.get(reverse("admin:ethics_meeting_change", args=[meeting.pk])).content.decode()
    assert url("decide", meeting, item.pk) not in page


def test_vote_before_attendance_is_refused(client, office, meeting, item):
    client.force_login(office)
    response = client.post(url("votes", meeting, item.pk), {})
    assert response.status_code == 200 and response.context["form"].non_field_errors()


def test_another_institutions_office_cannot_reach_the_meeting(client, meeting, item):
    client.force_login(UserFactory(role=Role.ETHICS_OFFICE))
    assert client.get(reverse("admin:ethics_meeting_change", args=[meeting.pk])).status_code in (302, 404)
    for name, args in (("attendance", ()), ("agenda_add", ()), ("votes", (item.pk,)), ("decide", (item.pk,))):
        assert client.post(url(name, meeting, *args), {}).status_code == 404
    meeting.refresh_from_db()
    assert meeting.status == Meeting.Status.PLANNED


def test_research_office_has_no_meeting_pages(client, research_office, meeting):
    client.force_login(research_office)
    assert client.get(reverse("admin:ethics_meeting_changelist")).status_code == 403
    assert client.post(url("attendance", meeting), {}).status_code in (403, 404)


def test_meeting_page_offers_close_and_cancel_and_keeps_the_agenda_open_in_session(client, office, committee, meeting):
    client.force_login(office)
    page = client.get(reverse("admin:ethics_meeting_change", args=[meeting.pk])).content.decode()
    assert url("cancel", meeting) in page and url("close", meeting) not in page

    services.meeting_record_attendance(meeting=meeting, actor=office, members=by_role(committee))
    page = client.get(reverse("admin:ethics_meeting_change", args=[meeting.pk])).content.decode()
    for name in ("agenda_add", "attendance", "close", "cancel"):
        assert url(name, meeting) in page


def test_office_closes_the_meeting_and_is_told_what_is_deferred(client, office, committee, meeting, item):
    services.meeting_record_attendance(meeting=meeting, actor=office, members=by_role(committee))
    client.force_login(office)
    confirm = client.get(url("close", meeting))
    assert str(item.submission) in confirm.context["intro"]

    response = client.post(url("close", meeting), {})

    assert response.status_code == 302
    meeting.refresh_from_db()
    assert meeting.status == Meeting.Status.CLOSED
    page = client.get(reverse("admin:ethics_meeting_change", args=[meeting.pk])).content.decode()
    for name in ("agenda_add", "attendance", "close", "cancel"):
        assert url(name, meeting) not in page
    assert url("votes", meeting, item.pk) not in page


def test_office_cancels_an_empty_meeting_with_a_reason(client, office, committee, meeting, item):
    client.force_login(office)
    refused = client.post(url("cancel", meeting), {"reason": ""})
    assert refused.status_code == 200 and "reason" in refused.context["form"].errors

    response = client.post(url("cancel", meeting), {"reason": "主任委员出差，改期"}, follow=True)

    meeting.refresh_from_db()
    assert meeting.status == Meeting.Status.CANCELLED
    assert "主任委员出差，改期" in response.content.decode()


def test_cancelling_a_meeting_with_a_decision_is_refused_on_the_form(client, office, committee, meeting, item):
    members = by_role(committee)
    services.meeting_record_attendance(meeting=meeting, actor=office, members=members)
    services.vote_record(agenda_item=item, actor=office, votes=dict.fromkeys(members, "approve"))
    services.decision_record(submission=item.submission, actor=office, outcome=Decision.Outcome.APPROVE)
    client.force_login(office)

    response = client.post(url("cancel", meeting), {"reason": "误建"})

    assert response.status_code == 200 and response.context["form"].non_field_errors()
    assert Meeting.objects.get(pk=meeting.pk).status == Meeting.Status.HELD


def test_another_institutions_office_cannot_close_or_cancel(client, meeting):
    client.force_login(UserFactory(role=Role.ETHICS_OFFICE))
    assert client.post(url("close", meeting), {}).status_code == 404
    assert client.post(url("cancel", meeting), {"reason": "x"}).status_code == 404
    assert Meeting.objects.get(pk=meeting.pk).status == Meeting.Status.PLANNED
