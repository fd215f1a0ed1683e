"""The PI's view of mutual recognition: the participating committees asked to recognise the lead approval, on the
trial page, on the lead decision's submission page and, while any is open, on the dashboard."""

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from cgtclinic.roles import Role
from ethics import recognition
from ethics.models import Decision, RecognitionRequest, Submission
from tests.factories.cgtclinic import InstitutionFactory, UserFactory
from tests.factories.ethics import AllianceFactory, EthicsCommitteeFactory
from tests.factories.trials import TrialSiteFactory
from trials.models import TrialSite

pytestmark = pytest.mark.django_db
R = RecognitionRequest.Status


@pytest.fixture
def requests(approved_trial, committee, pi):
    """Two participating sites asked to recognise the lead approval: one answered late with a condition, one open
    and past its deadline (escalated)."""
    hospitals = [
        InstitutionFactory(name_zh="湾区人民医院", name_en="Bay Area People's Hospital"),
        InstitutionFactory(name_zh="南粤肿瘤医院", name_en="Nanyue Cancer Hospital"),
    ]
    committees = [EthicsCommitteeFactory(institution=hospital) for hospital in hospitals]
    for hospital in hospitals:
        TrialSiteFactory(trial=approved_trial, institution=hospital, role=TrialSite.SiteRole.PARTICIPATING)
    AllianceFactory(members=[committee, *committees])
    decision = Decision.objects.get(submission__trial=approved_trial)
    decision.decided_at = timezone.now() - datetime.timedelta(days=14)
    decision.save()
    answered, still_open = sorted(
        recognition.requests_open_for_decision(decision=decision, actor=pi), key=lambda r: r.committee.name_zh
    )
    office = UserFactory(role=Role.ETHICS_OFFICE, institution=answered.committee.institution)
    recognition.recognition_respond(
        request=answered, actor=office, outcome=R.RECOGNISED_WITH_CONDITIONS, note="须加印本院伦理委员会联系电话"
    )
    recognition.sweep()
    return {"decision": decision, "answered": answered, "open": still_open}


def test_the_trial_page_lists_each_committee_with_status_deadline_and_conditions(pi_client, approved_trial, requests):
    response = pi_client.get(reverse("ethics_portal:trial_detail", args=[approved_trial.pk]))

    assert response.status_code == 200
    shown = list(response.context["recognition_requests"])
    assert {r.pk for r in shown} == {requests["answered"].pk, requests["open"].pk}
    page = response.content.decode()
    assert "Recognition by participating sites" in page
    assert "Bay Area People&#x27;s Hospital" in page and "Nanyue Cancer Hospital" in page
    assert "Recognised with conditions" in page and "须加印本院伦理委员会联系电话" in page
    assert "Awaiting feedback" in page and "Overdue" in page
    assert ">late<" in page
    due = timezone.localtime(requests["open"].due_at).strftime("%Y-%m-%d %H:%M")
    assert due in page


def test_a_provisional_deadline_is_marked(pi_client, approved_trial, requests):
    RecognitionRequest.objects.filter(pk=requests["open"].pk).update(provisional=True, provisional_years=[2099])

    page = pi_client.get(reverse("ethics_portal:trial_detail", args=[approved_trial.pk])).content.decode()

    assert "(provisional)" in page


def test_the_lead_decision_page_shows_the_requests_it_opened(pi_client, requests):
    submission = requests["decision"].submission

    response = pi_client.get(reverse("ethics_portal:submission_detail", args=[submission.pk]))

    assert {r.pk for r in response.context["recognition_requests"]} == {requests["answered"].pk, requests["open"].pk}
    assert "Recognition by participating sites" in response.content.decode()


def test_the_dashboard_counts_the_open_requests_and_links_to_the_trial(pi_client, approved_trial, requests):
    response = pi_client.get(reverse("ethics_portal:dashboard"))

    assert [(row["trial"], row["count"], row["overdue"]) for row in response.context["awaiting_recognition"]] == [
        (approved_trial, 1, 1)
    ]
    page = response.content.decode()
    assert "Recognition requests" in page and "1 request awaiting feedback" in page
    assert reverse("ethics_portal:trial_detail", args=[approved_trial.pk]) + "#recognition" in page


def test_nothing_on_the_dashboard_once_every_site_has_answered(pi_client, requests):
    office = UserFactory(role=Role.ETHICS_OFFICE, institution=requests["open"].committee.institution)
    recognition.recognition_respond(request=requests["open"], actor=office, outcome=R.RECOGNISED)

    response = pi_client.get(reverse("ethics_portal:dashboard"))

    assert response.context["awaiting_recognition"] == []
    assert "Recognition requests" not in response.content.decode()


def test_the_participating_site_pi_sees_the_request_for_their_site(client, approved_trial, requests):
    site = TrialSite.objects.get(trial=approved_trial, institution=requests["open"].committee.institution)
    site_pi = UserFactory(role=Role.PI, institution=site.institution)
    site.site_pi = site_pi
    site.save()
    client.force_login(site_pi)

    response = client.get(reverse("ethics_portal:trial_detail", args=[approved_trial.pk]))

    assert [r.pk for r in response.context["recognition_requests"]] == [requests["open"].pk]


def test_another_pi_sees_neither_the_trial_nor_its_requests(client, other_pi, approved_trial, requests):
    client.force_login(other_pi)

    assert client.get(reverse("ethics_portal:trial_detail", args=[approved_trial.pk])).status_code == 404
    submission = requests["decision"].submission
    assert client.get(reverse("ethics_portal:submission_detail", args=[submission.pk])).status_code == 404
    response = client.get(reverse("ethics_portal:dashboard"))
    assert response.context["awaiting_recognition"] == []


def test_no_section_without_requests(pi_client, approved_trial):
    response = pi_client.get(reverse("ethics_portal:trial_detail", args=[approved_trial.pk]))

    assert not response.context["recognition_requests"]
    assert "Recognition by participating sites" not in response.content.decode()
    assert Submission.objects.filter(trial=approved_trial).exists()
