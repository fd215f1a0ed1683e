import pytest

from cgtclinic.roles import Role
from tests.factories.cgtclinic import SponsorFactory, UserFactory, review_interval_parameter
from tests.factories.subsidies import shanghai_program


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
