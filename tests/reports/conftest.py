import pytest

from tests.factories.cgtclinic import (
    InstitutionFactory,
    RegionFactory,
)


@pytest.fixture(autouse=True)
def _ledger_and_throttle(review_interval, fresh_throttle):
    """Every report test has the national review interval and starts with no throttle counts."""


@pytest.fixture
def other_region(db):
    return RegionFactory(code="other-region", name_zh="外省", name_en="Other Province")


@pytest.fixture
def neighbour(region):
    """A second institution in the test region."""
    return InstitutionFactory(region=region)


@pytest.fixture
def outsider(other_region):
    """An institution in another region."""
    return InstitutionFactory(region=other_region)
