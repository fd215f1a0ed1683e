import pytest
from django.core.cache import cache

from tests.factories.cgtclinic import (
    InstitutionFactory,
    RegionFactory,
    review_interval_parameter,
)


@pytest.fixture(autouse=True)
def review_interval(db):
    """The national continuing-review interval the enrolment ledger needs."""
    return review_interval_parameter()


@pytest.fixture(autouse=True)
def _fresh_throttle():
    """Throttle counts live in the cache; each test starts with none."""
    cache.clear()
    yield
    cache.clear()


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
