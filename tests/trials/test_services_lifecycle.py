"""Every lifecycle step of a trial: allowed moves, refused moves, who may take them, and the record left."""

import pytest

from cgtclinic.errors import DomainError, TransitionNotAllowed
from cgtclinic.roles import Role
from tests.factories.cgtclinic import UserFactory
from tests.factories.trials import TrialFactory
from trials import services
from trials.models import Trial, TrialStatusChange

S = Trial.Status

# step function, extra kwargs, the states it accepts, the state it leads to (None: back to the prior state)
STEPS = [
    (services.trial_submit, {}, {S.DRAFT}, S.SUBMITTED),
    (services.trial_start_review, {}, {S.SUBMITTED}, S.UNDER_REVIEW),
    (services.trial_approve, {}, {S.UNDER_REVIEW}, S.APPROVED),
    (services.trial_activate, {}, {S.APPROVED}, S.ACTIVE),
    (services.trial_close_enrolment, {}, {S.ACTIVE}, S.ENROLMENT_CLOSED),
    (services.trial_complete, {}, {S.ENROLMENT_CLOSED}, S.COMPLETED),
    (services.trial_suspend, {"reason": "SAE"}, {S.APPROVED, S.ACTIVE, S.ENROLMENT_CLOSED}, S.SUSPENDED),
    (
        services.trial_terminate,
        {"reason": "futility"},
        {S.APPROVED, S.ACTIVE, S.ENROLMENT_CLOSED, S.SUSPENDED},
        S.TERMINATED,
    ),
    (services.trial_withdraw, {"reason": "sponsor"}, {S.DRAFT, S.SUBMITTED, S.UNDER_REVIEW}, S.WITHDRAWN),
]

CASES = [(step, kwargs, source, allowed, target) for step, kwargs, allowed, target in STEPS for source in S.values]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("step", "kwargs", "source", "allowed", "target"),
    CASES,
    ids=[f"{step.__name__}-from-{source}" for step, _k, source, _a, _t in CASES],
)
def test_each_step_from_each_state(step, kwargs, source, allowed, target, research_office):
    trial = TrialFactory(lead_institution=research_office.institution, status=source)
    if source in allowed:
        result = step(trial=trial, actor=research_office, **kwargs)
        assert result.status == target
        change = TrialStatusChange.objects.get(trial=trial)
        assert (change.from_status, change.to_status, change.actor) == (source, target, research_office)
        assert trial.history.first().history_user == research_office
    else:
        with pytest.raises(TransitionNotAllowed):
            step(trial=trial, actor=research_office, **kwargs)
        trial.refresh_from_db()
        assert trial.status == source
        assert not TrialStatusChange.objects.filter(trial=trial).exists()


@pytest.mark.django_db
def test_resume_returns_to_the_state_suspended_from(research_office):
    trial = TrialFactory(lead_institution=research_office.institution, status=S.ENROLMENT_CLOSED)
    services.trial_suspend(trial=trial, actor=research_office, reason="DSMB pause")
    resumed = services.trial_resume(trial=trial, actor=research_office)
    assert resumed.status == S.ENROLMENT_CLOSED
    assert list(trial.status_changes.values_list("to_status", flat=True)) == [S.SUSPENDED, S.ENROLMENT_CLOSED]


@pytest.mark.django_db
def test_resume_refused_unless_suspended(research_office):
    trial = TrialFactory(lead_institution=research_office.institution, status=S.ACTIVE)
    with pytest.raises(TransitionNotAllowed):
        services.trial_resume(trial=trial, actor=research_office)


@pytest.mark.django_db
@pytest.mark.parametrize("step", [services.trial_suspend, services.trial_terminate, services.trial_withdraw])
def test_steps_that_need_a_reason_refuse_a_blank_one(step, research_office):
    trial = TrialFactory(lead_institution=research_office.institution, status=S.SUBMITTED)
    with pytest.raises(DomainError) as err:
        step(trial=trial, actor=research_office, reason="  ")
    assert err.value.code == "reason_required"


@pytest.mark.django_db
def test_another_institution_cannot_move_the_trial(research_office):
    trial = TrialFactory(status=S.DRAFT)  # led elsewhere
    with pytest.raises(DomainError) as err:
        services.trial_submit(trial=trial, actor=research_office)
    assert err.value.code == "permission_denied"
    trial.refresh_from_db()
    assert trial.status == S.DRAFT


@pytest.mark.django_db
def test_pi_may_submit_own_trial_but_not_activate_it():
    trial = TrialFactory(status=S.DRAFT)
    services.trial_submit(trial=trial, actor=trial.pi)
    trial.status = S.APPROVED
    trial.save()
    with pytest.raises(DomainError):
        services.trial_activate(trial=trial, actor=trial.pi)


@pytest.mark.django_db
def test_pi_cannot_submit_someone_elses_trial():
    trial = TrialFactory(status=S.DRAFT)
    other_pi = UserFactory(role=Role.PI, institution=trial.lead_institution)
    with pytest.raises(DomainError):
        services.trial_submit(trial=trial, actor=other_pi)


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.REGULATOR, Role.ETHICS_OFFICE])
def test_regulator_and_ethics_office_cannot_activate(role, institution, region):
    trial = TrialFactory(lead_institution=institution, status=S.APPROVED)
    actor = UserFactory(role=role, institution=institution if role != Role.REGULATOR else None, region=region)
    with pytest.raises(DomainError):
        services.trial_activate(trial=trial, actor=actor)
