import pytest

from cgtclinic.roles import Role
from subsidies import services
from tests.factories.cgtclinic import SponsorFactory, UserFactory, review_interval_parameter
from tests.factories.subsidies import CLAIM_YEAR, completed_gene_trial, policy_value, shanghai_program
from trials.models import Trial


@pytest.fixture(autouse=True)
def review_interval(request):
    """The national continuing-review interval the ledger needs, for every test that uses the database (the
    arithmetic of subsidies.rules is tested without one)."""
    uses_db = request.node.get_closest_marker("django_db") or {"db", "transactional_db"} & set(request.fixturenames)
    if not uses_db:
        return None
    request.getfixturevalue("db")
    return review_interval_parameter()


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


@pytest.fixture
def trials(institution, research_office, program, region):
    """Three trials at the hospital: a small and a large gene-therapy IIT (the large one over the project cap), and
    a CAR-T trial the program does not cover."""
    rate = policy_value("subsidy_per_patient_rmb", region)
    over_cap = int(policy_value("subsidy_project_cap_rmb", region) / rate) + 2
    return {
        "small": completed_gene_trial(institution, enrolled=3, actor=research_office, protocol_number="GT-2024-01"),
        "large": completed_gene_trial(
            institution, enrolled=over_cap, actor=research_office, protocol_number="GT-2024-02"
        ),
        "cart": completed_gene_trial(
            institution,
            enrolled=4,
            actor=research_office,
            protocol_number="CT-2024-03",
            therapy_category=Trial.TherapyCategory.IMMUNE_CELL,
        ),
    }


@pytest.fixture
def claim(trials, program, research_office):
    """The hospital's draft claim for CLAIM_YEAR over ``trials``."""
    return services.claim_open(actor=research_office, program=program, year=CLAIM_YEAR)
