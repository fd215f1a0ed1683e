"""A trial in the API carries its available_steps (trials.services.available_steps), and the lifecycle actions
agree with them: every step listed posts, every other is refused."""

import pytest
from rest_framework.test import APIClient

from tests.factories.trials import TrialFactory
from trials import services
from trials.models import Trial

S = Trial.Status
pytestmark = pytest.mark.django_db


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def action_url(trial, step):
    return f"/api/v1/trials/{trial.pk}/{step.replace('_', '-')}/"


@pytest.mark.parametrize(
    ("role", "status", "expected"),
    [
        ("research_office", S.DRAFT, ["submit", "withdraw"]),
        ("pi", S.DRAFT, ["submit", "withdraw"]),
        ("ethics_office", S.DRAFT, ["withdraw"]),
        ("research_office", S.APPROVED, ["activate", "suspend", "terminate"]),
        ("ethics_office", S.APPROVED, ["suspend", "terminate"]),
        ("pi", S.ACTIVE, []),
        ("regulator", S.ACTIVE, []),
        ("research_office", S.COMPLETED, []),
    ],
)
def test_the_detail_and_the_list_show_the_steps_the_caller_may_take(request, pi, role, status, expected):
    user = request.getfixturevalue(role)
    trial = TrialFactory(lead_institution=pi.institution, pi=pi, status=status)
    detail = api(user).get(f"/api/v1/trials/{trial.pk}/")
    assert detail.status_code == 200
    assert detail.json()["available_steps"] == expected
    listed = api(user).get("/api/v1/trials/").json()["results"]
    assert [row["available_steps"] for row in listed if row["id"] == trial.pk] == [expected]


@pytest.mark.parametrize("status", [s for s in S.values if s in services.ALLOWED])
@pytest.mark.parametrize("role", ["research_office", "ethics_office", "pi"])
def test_every_listed_action_posts_and_every_other_is_refused(request, pi, status, role):
    user = request.getfixturevalue(role)
    client = api(user)
    probe = TrialFactory(lead_institution=pi.institution, pi=pi, status=status)
    listed = client.get(f"/api/v1/trials/{probe.pk}/").json()["available_steps"]
    for step in services.STEPS:
        trial = TrialFactory(lead_institution=pi.institution, pi=pi, status=status)
        response = client.post(action_url(trial, step), {"reason": "DSMB"}, format="json")
        if step in listed:
            assert response.status_code == 200, (step, response.json())
            assert response.json()["status"] != status
        else:
            assert response.status_code in (403, 409), (step, response.status_code)
            trial.refresh_from_db()
            assert trial.status == status
