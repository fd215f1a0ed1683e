"""The claim workflow's one table (subsidies.services.ALLOWED) and available_steps: what each role may do in each
state; the step functions accept exactly what is offered; the admin's buttons are the offered steps it runs."""

import pytest
from django.db import transaction
from django.urls import reverse

from cgtclinic.errors import DomainError
from cgtclinic.roles import Role
from subsidies import services
from subsidies.admin import CLAIM_STEPS
from subsidies.models import Claim
from tests.factories.cgtclinic import InstitutionFactory, RegionFactory, UserFactory
from tests.factories.subsidies import claim_in, run

C = Claim.Status
pytestmark = pytest.mark.django_db

# Written out by hand, not derived from the table under test.
EXPECTED = {
    C.DRAFT: {"office": ["recompute", "change_lines", "submit", "discard"], "regulator": []},
    C.SUBMITTED: {"office": [], "regulator": ["start_review"]},
    C.UNDER_REVIEW: {"office": [], "regulator": ["approve", "partially_approve", "reject"]},
    C.APPROVED: {"office": [], "regulator": ["pay", "pay_part"]},
    C.PARTIALLY_APPROVED: {"office": [], "regulator": ["pay", "pay_part"]},
    C.PARTIALLY_PAID: {"office": [], "regulator": ["pay", "pay_part"]},
    C.REJECTED: {"office": [], "regulator": []},
    C.PAID: {"office": [], "regulator": []},
}


class Rollback(Exception):
    pass


@pytest.fixture
def people(research_office, ethics_office, regulator_user, system_admin, institution):
    return {
        "office": research_office,
        "regulator": regulator_user,
        "ethics_office": ethics_office,
        "system_admin": system_admin,
        "other_office": UserFactory(
            role=Role.RESEARCH_OFFICE, institution=InstitutionFactory(region=institution.region)
        ),
        "other_regulator": UserFactory(role=Role.REGULATOR, region=RegionFactory(code="elsewhere")),
    }


def try_step(claim, actor, step) -> bool:
    """Whether the service takes the step; whatever it did is rolled back."""
    try:
        with transaction.atomic():
            run(Claim.objects.get(pk=claim.pk), actor, step)
            raise Rollback
    except Rollback:
        return True
    except DomainError:
        return False


def test_the_table_covers_every_state_and_step():
    assert set(services.ALLOWED) | {C.REJECTED, C.PAID} == set(C.values)
    assert set(services.STEPS) == set(services.STEP_ACTORS)
    assert services.DECISIONS == {
        services.APPROVE: C.APPROVED,
        services.PARTIAL: C.PARTIALLY_APPROVED,
        services.REJECT: C.REJECTED,
    }


@pytest.mark.parametrize("status", C.values)
def test_available_steps_per_role_and_state(status, claim, people):
    claim = claim_in(status, claim, people["office"], people["regulator"])
    assert claim.status == status
    for role in ("office", "regulator"):
        assert services.available_steps(claim, people[role]) == EXPECTED[status][role], role
    for role in ("ethics_office", "other_office", "other_regulator"):
        assert services.available_steps(claim, people[role]) == [], role
    assert services.available_steps(claim, people["system_admin"]) == list(services.ALLOWED.get(status, {}))


@pytest.mark.parametrize("status", C.values)
def test_the_services_accept_exactly_the_available_steps(status, claim, people):
    claim = claim_in(status, claim, people["office"], people["regulator"])
    for role in ("office", "regulator", "other_office", "other_regulator"):
        actor = people[role]
        offered = services.available_steps(claim, actor)
        for step in services.STEPS:
            assert try_step(claim, actor, step) == (step in offered), (role, step)
    assert Claim.objects.get(pk=claim.pk).status == status


def test_the_admin_offers_the_draft_steps_it_runs(client, claim, people):
    client.force_login(people["office"])
    page = client.get(reverse("admin:subsidies_claim_change", args=[claim.pk]))
    offered = [step for step, _label in page.context["steps"]]
    assert offered == [s for s in services.available_steps(claim, people["office"]) if s in CLAIM_STEPS]
    assert offered == ["recompute", "submit", "discard"]
    assert page.context["may_change_lines"]
    for step in offered:
        assert reverse("admin:subsidies_claim_step", args=[claim.pk, step]) in page.content.decode()


@pytest.mark.parametrize("status", [C.SUBMITTED, C.UNDER_REVIEW, C.APPROVED, C.PAID])
def test_the_admin_offers_nothing_once_submitted(client, claim, people, status):
    claim = claim_in(status, claim, people["office"], people["regulator"])
    for role in ("office", "system_admin"):
        client.force_login(people[role])
        page = client.get(reverse("admin:subsidies_claim_change", args=[claim.pk]))
        assert page.context["steps"] == []
        assert not page.context["may_change_lines"]
        assert reverse("admin:subsidies_claim_step", args=[claim.pk, "recompute"]) not in page.content.decode()


def test_opening_a_step_the_claim_no_longer_allows_goes_back_with_the_reason(client, claim, people):
    claim = claim_in(C.SUBMITTED, claim, people["office"], people["regulator"])
    client.force_login(people["office"])
    response = client.get(reverse("admin:subsidies_claim_step", args=[claim.pk, "submit"]), HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:subsidies_claim_change", args=[claim.pk])
    page = client.get(response["Location"], HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "is not a step you can take" in page
