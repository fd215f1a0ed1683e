import pytest

from tests.factories.cgtclinic import review_interval_parameter


@pytest.fixture(autouse=True)
def review_interval(db):
    return review_interval_parameter()
