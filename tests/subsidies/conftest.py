import datetime

import pytest

from cgtclinic.models import PolicyParameter
from cgtclinic.roles import Role
from tests.factories.cgtclinic import PolicyParameterFactory, SponsorFactory, UserFactory
from tests.factories.subsidies import shanghai_program
from tests.factories.trials import approve_site, trial_with_history
from trials import enrolment
from trials.enrolment import REVIEW_INTERVAL_CODE
from trials.models import Trial


@pytest.fixture(autouse=True)
def review_interval(db):
    return PolicyParameterFactory(
        code=REVIEW_INTERVAL_CODE,
        region=None,
        value=12,
        unit=PolicyParameter.Unit.MONTHS,
        effective_from=datetime.date(2023, 2, 18),
    )


@pytest.fixture
def program(region):
    """Shanghai's per-patient gene-therapy program, in the test region."""
    return shanghai_program(region)


@pytest.fixture
def regulator_user(region):
    return UserFactory(role=Role.REGULATOR, region=region)


@pytest.fixture
def local_sponsor(region):
    return SponsorFactory(region=region, is_cgt_enterprise=True)


def completed_gene_trial(institution, *, enrolled: int, actor, started=datetime.date(2024, 3, 1), **kwargs):
    """A gene-therapy IIT at ``institution`` that enrolled ``enrolled`` patients in 2024 and completed in 2025."""
    history = [
        (Trial.Status.SUBMITTED, started - datetime.timedelta(days=60)),
        (Trial.Status.UNDER_REVIEW, started - datetime.timedelta(days=50)),
        (Trial.Status.APPROVED, started - datetime.timedelta(days=20)),
        (Trial.Status.ACTIVE, started),
        (Trial.Status.ENROLMENT_CLOSED, datetime.date(2024, 12, 20)),
        (Trial.Status.COMPLETED, datetime.date(2025, 6, 30)),
    ]
    kwargs.setdefault("kind", Trial.Kind.IIT)
    kwargs.setdefault("therapy_category", Trial.TherapyCategory.VIRAL_VECTOR_GENE)
    trial = trial_with_history(history, lead_institution=institution, **kwargs)
    site = trial.sites.get()
    approve_site(site, started - datetime.timedelta(days=20))
    if enrolled:
        enrolment.enrolment_report(
            site=site, actor=actor, kind="enrolled", occurred_on=started + datetime.timedelta(days=10), count=enrolled
        )
    return trial
