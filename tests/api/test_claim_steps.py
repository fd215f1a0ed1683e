"""A claim in the API carries its available_steps (subsidies.services.available_steps), and the claim's actions
agree with them: every step listed goes through, every other is refused."""

import pytest
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient

from cgtclinic.roles import Role
from subsidies import services
from subsidies.models import Claim
from tests.factories.cgtclinic import RegionFactory, UserFactory
from tests.factories.subsidies import CLAIM_YEAR, claim_in, completed_gene_trial, eligible_line, shanghai_program

C = Claim.Status
pytestmark = pytest.mark.usefixtures("review_interval")


@pytest.fixture
def draft(research_office, region):
    completed_gene_trial(research_office.institution, enrolled=5, actor=research_office)
    return services.claim_open(actor=research_office, program=shanghai_program(region), year=CLAIM_YEAR)


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def call(client: APIClient, claim: Claim, step: str):
    """The API request that takes a step."""
    base = f"/api/v1/claims/{claim.pk}/"
    if step == "discard":
        return client.delete(base)
    if step == "change_lines":
        line = eligible_line(claim) or claim.lines.first()
        return client.post(f"{base}lines/{line.pk}/exclude/", {"reason": "no consent"}, format="json")
    if step in services.DECISIONS:
        line = eligible_line(claim) or claim.lines.first()
        body = {"decision": step, "note": "as reviewed"}
        if step == services.PARTIAL:
            body["adjustments"] = {str(line.pk): {"amount": str(line.amount_computed - 1), "reason": "one invoice"}}
        return client.post(f"{base}decide/", body, format="json")
    if step in ("pay", "pay_part"):
        # One action for both steps: the whole balance pays the claim, half of it leaves it partly paid.
        amount = claim.balance if claim.balance is not None else claim.amount_claimed
        if step == "pay_part":
            amount = (amount / 2).quantize(amount.__class__("0.01"))
        return client.post(f"{base}pay/", {"amount": str(amount), "paid_on": timezone.localdate()}, format="json")
    return client.post(f"{base}{step.replace('_', '-')}/", {}, format="json")


class Rollback(Exception):
    pass


def went_through(client, claim, step) -> bool:
    """Whether the API takes the step; what it did is rolled back, so the next step starts from the same state."""
    try:
        with transaction.atomic():
            response = call(client, Claim.objects.get(pk=claim.pk), step)
            if response.status_code in (200, 204):
                raise Rollback
    except Rollback:
        return True
    return False


@pytest.mark.parametrize(
    ("status", "office_steps", "regulator_steps"),
    [
        (C.DRAFT, ["recompute", "change_lines", "submit", "discard"], None),  # a regulator never sees a draft
        (C.SUBMITTED, [], ["start_review"]),
        (C.UNDER_REVIEW, [], ["approve", "partially_approve", "reject"]),
        (C.PARTIALLY_APPROVED, [], ["pay", "pay_part"]),
        (C.PARTIALLY_PAID, [], ["pay", "pay_part"]),
        (C.PAID, [], []),
    ],
)
def test_the_detail_and_the_list_show_the_steps_the_caller_may_take(
    draft, research_office, regulator, status, office_steps, regulator_steps
):
    claim = claim_in(status, draft, research_office, regulator)
    for user, expected in ((research_office, office_steps), (regulator, regulator_steps)):
        detail = api(user).get(f"/api/v1/claims/{claim.pk}/")
        if expected is None:
            assert detail.status_code == 404
            continue
        assert detail.json()["available_steps"] == expected
        listed = api(user).get("/api/v1/claims/").json()["results"]
        assert [row["available_steps"] for row in listed if row["id"] == claim.pk] == [expected]


@pytest.mark.parametrize("status", [C.DRAFT, C.SUBMITTED, C.UNDER_REVIEW, C.APPROVED, C.PARTIALLY_PAID, C.PAID])
@pytest.mark.parametrize("role", ["office", "regulator"])
def test_every_listed_action_goes_through_and_every_other_is_refused(draft, research_office, regulator, status, role):
    claim = claim_in(status, draft, research_office, regulator)
    user = research_office if role == "office" else regulator
    client = api(user)
    listed = services.available_steps(claim, user)
    if status != C.DRAFT or role == "office":
        assert client.get(f"/api/v1/claims/{claim.pk}/").json()["available_steps"] == listed
    for step in services.STEPS:
        if step in listed:
            assert went_through(client, claim, step), step
        else:
            response = call(client, Claim.objects.get(pk=claim.pk), step)
            assert response.status_code in (403, 404, 409), (step, response.status_code, response.content)
        assert Claim.objects.get(pk=claim.pk).status == status


def test_another_regions_regulator_neither_sees_nor_steps(draft, research_office, regulator):
    claim = claim_in(C.SUBMITTED, draft, research_office, regulator)
    elsewhere = UserFactory(role=Role.REGULATOR, region=RegionFactory(code="elsewhere"))
    assert api(elsewhere).get(f"/api/v1/claims/{claim.pk}/").status_code == 404
    assert call(api(elsewhere), claim, "start_review").status_code == 404
