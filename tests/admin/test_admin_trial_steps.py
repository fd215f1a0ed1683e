"""The trial page's lifecycle buttons are trials.services.available_steps: no button for a step the user may not
take, and every button offered runs."""

import pytest
from django.urls import reverse

from tests.factories.trials import TrialFactory
from trials import services
from trials.models import Trial

S = Trial.Status
pytestmark = pytest.mark.django_db


def step_url(trial, step):
    return reverse("admin:trials_trial_transition", args=[trial.pk, step])


def offered(client, trial):
    page = client.get(reverse("admin:trials_trial_change", args=[trial.pk]))
    assert page.status_code == 200
    return [step for step, _label in page.context["transitions"]]


def test_the_ethics_office_is_not_offered_the_research_offices_steps(client, ethics_office, research_office):
    """The old page offered every step of the state (Activate, Close enrolment, Complete) to the ethics office,
    which the service then refused."""
    client.force_login(ethics_office)
    for status, research_office_only in [
        (S.APPROVED, "activate"),
        (S.ACTIVE, "close_enrolment"),
        (S.ENROLMENT_CLOSED, "complete"),
    ]:
        trial = TrialFactory(lead_institution=ethics_office.institution, status=status)
        steps = offered(client, trial)
        assert research_office_only not in steps
        assert (
            step_url(trial, research_office_only)
            not in client.get(reverse("admin:trials_trial_change", args=[trial.pk])).content.decode()
        )
        assert steps == services.available_steps(trial, ethics_office) == ["suspend", "terminate"]
        assert research_office_only in services.available_steps(trial, research_office)


@pytest.mark.parametrize("status", [s for s in S.values if s in services.ALLOWED])
@pytest.mark.parametrize("role", ["research_office", "ethics_office"])
def test_every_button_offered_runs_and_no_other(client, request, status, role):
    user = request.getfixturevalue(role)
    client.force_login(user)
    probe = TrialFactory(lead_institution=user.institution, status=status)
    steps = offered(client, probe)
    assert steps == services.available_steps(probe, user)
    for step in services.STEPS:
        trial = TrialFactory(lead_institution=user.institution, status=status)
        response = client.post(step_url(trial, step), {"reason": "DSMB"})
        trial.refresh_from_db()
        if step in steps:
            assert response.status_code == 302, (step, response.content.decode()[:500])
            assert trial.status != status
        else:
            assert response.status_code == 200  # the confirmation page again, with the refusal
            assert response.context["form"].non_field_errors()
            assert trial.status == status


def test_the_apis_spelling_of_a_step_works_in_the_admin(client, research_office):
    trial = TrialFactory(lead_institution=research_office.institution, status=S.SUBMITTED)
    client.force_login(research_office)
    assert client.post(step_url(trial, "start-review")).status_code == 302
    trial.refresh_from_db()
    assert trial.status == S.UNDER_REVIEW


def test_an_unknown_step_is_not_found(client, research_office):
    trial = TrialFactory(lead_institution=research_office.institution)
    client.force_login(research_office)
    assert client.get(step_url(trial, "launch")).status_code == 404


def test_opening_a_step_the_user_may_not_take_goes_back_with_the_reason(client, ethics_office):
    trial = TrialFactory(lead_institution=ethics_office.institution, status=S.APPROVED)
    client.force_login(ethics_office)
    response = client.get(step_url(trial, "activate"), HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:trials_trial_change", args=[trial.pk])
    page = client.get(response["Location"], HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "is not a step you can take" in page
    assert client.get(step_url(trial, "suspend")).status_code == 200
