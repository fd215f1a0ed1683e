import pytest


@pytest.fixture(autouse=True)
def _review_interval(review_interval):
    return review_interval
