import datetime

import pytest

from cgtclinic.models import PolicyParameter
from tests.factories.cgtclinic import PolicyParameterFactory
from trials.enrolment import REVIEW_INTERVAL_CODE


@pytest.fixture(autouse=True)
def review_interval(db):
    """The national continuing-review interval, which bounds approvals recorded without a validity date."""
    return PolicyParameterFactory(
        code=REVIEW_INTERVAL_CODE,
        region=None,
        value=12,
        unit=PolicyParameter.Unit.MONTHS,
        effective_from=datetime.date(2023, 2, 18),
    )
