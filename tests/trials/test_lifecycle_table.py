"""The trial lifecycle's one table (trials.services.ALLOWED) and available_steps: what each role may do in each
state, and that the step functions accept exactly what available_steps offers."""

import pytest

from cgtclinic.errors import DomainError
from cgtclinic.roles import Role
from tests.factories.cgtclinic import InstitutionFactory, UserFactory
from tests.factories.trials import TrialFactory
from trials import services
from trials.models import Trial

S = Trial.Status
TERMINAL = {S.COMPLETED, S.TERMINATED, S.WITHDRAWN}

# What the lead side may do, state by state, written out by hand (not derived from the table under test).
EXPECTED = {
    S.DRAFT: {
        "research_office": ["submit", "withdraw"],
        "ethics_office": ["withdraw"],
        "pi": ["submit", "withdraw"],
    },
    S.SUBMITTED: {
        "research_office": ["start_review", "withdraw"],
        "ethics_office": ["start_review", "withdraw"],
        "pi": ["withdraw"],
    },
    S.UNDER_REVIEW: {
        "research_office": ["approve", "withdraw"],
        "ethics_office": ["approve", "withdraw"],
        "pi": ["withdraw"],
    },
    S.APPROVED: {
        "research_office": ["activate", "suspend", "terminate"],
        "ethics_office": ["suspend", "terminate"],
        "pi": [],
    },
    S.ACTIVE: {
        "research_office": ["close_enrolment", "suspend", "terminate"],
        "ethics_office": ["suspend", "terminate"],
        "pi": [],
    },
    S.ENROLMENT_CLOSED: {
        "research_office": ["complete", "suspend", "terminate"],
        "ethics_office": ["suspend", "terminate"],
        "pi": [],
    },
    S.SUSPENDED: {
        "research_office": ["resume", "terminate"],
        "ethics_office": ["resume", "terminate"],
        "pi": [],
    },
}
LEAD_ROLES = ["research_office", "ethics_office", "pi"]
OUTSIDERS = ["regulator", "other_research_office", "other_pi"]


@pytest.fixture
def people(research_office, ethics_office, pi, regulator, system_admin):
    other = InstitutionFactory(region=research_office.institution.region)
    return {
        "research_office": research_office,
        "ethics_office": ethics_office,
        "pi": pi,
        "regulator": regulator,
        "system_admin": system_admin,
        "other_research_office": UserFactory(role=Role.RESEARCH_OFFICE, institution=other),
        "other_pi": UserFactory(role=Role.PI, institution=research_office.institution),
    }


def lead_trial(people, status):
    return TrialFactory(lead_institution=people["research_office"].institution, pi=people["pi"], status=status)


def take(trial, actor, step):
    reason = "recorded in the history" if step in services.REASON_REQUIRED else ""
    return services.trial_take_step(trial=trial, actor=actor, step=step, reason=reason)


def test_the_table_covers_every_state_and_step():
    assert set(services.ALLOWED) | TERMINAL == set(S.values)
    assert set(services.STEPS) == set(services.STEP_ROLES)
    for steps in services.ALLOWED.values():
        assert set(steps.values()) <= set(S.values) | {services.PREVIOUS}


@pytest.mark.django_db
@pytest.mark.parametrize("status", S.values)
@pytest.mark.parametrize("role", LEAD_ROLES)
def test_available_steps_per_role_and_state(people, status, role):
    trial = lead_trial(people, status)
    assert services.available_steps(trial, people[role]) == EXPECTED.get(status, {}).get(role, [])


@pytest.mark.django_db
@pytest.mark.parametrize("status", S.values)
def test_outsiders_have_no_steps_and_a_system_administrator_has_all(people, status):
    trial = lead_trial(people, status)
    for role in OUTSIDERS:
        assert services.available_steps(trial, people[role]) == [], role
    assert services.available_steps(trial, people["system_admin"]) == list(services.ALLOWED.get(status, {}))


@pytest.mark.django_db
@pytest.mark.parametrize("status", S.values)
@pytest.mark.parametrize("role", [*LEAD_ROLES, "regulator", "other_research_office"])
def test_the_services_accept_exactly_the_available_steps(people, status, role):
    """Each step, from each state, by each role, on a fresh trial: it succeeds if and only if it is offered."""
    actor = people[role]
    offered = services.available_steps(lead_trial(people, status), actor)
    for step in services.STEPS:
        trial = lead_trial(people, status)
        if step in offered:
            result = take(trial, actor, step)
            target = services.ALLOWED[status][step]
            assert result.status == (S.ACTIVE if target == services.PREVIOUS else target)
        else:
            with pytest.raises(DomainError):
                take(trial, actor, step)
            trial.refresh_from_db()
            assert trial.status == status


@pytest.mark.django_db
def test_an_unknown_step_is_refused(people):
    with pytest.raises(DomainError) as caught:
        services.trial_take_step(trial=lead_trial(people, S.DRAFT), actor=people["research_office"], step="launch")
    assert caught.value.code == "unknown_step"
