"""Recognition timeliness per alliance and institution, checked against figures computed by hand."""

import datetime
import statistics
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from ethics.models import RecognitionRequest, Submission
from ethics.selectors import recognition_timeliness
from tests.factories.cgtclinic import InstitutionFactory
from tests.factories.ethics import AllianceFactory, EthicsCommitteeFactory
from tests.factories.trials import TrialFactory, TrialSiteFactory

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime.datetime(2026, 11, 20, 12, 0, tzinfo=SH)
R = RecognitionRequest.Status
pytestmark = pytest.mark.django_db


def make(alliance, committee, *, status, hours=None, late=False, overdue=False):
    site = TrialSiteFactory(trial=TrialFactory(), institution=committee.institution)
    received = NOW - datetime.timedelta(days=10)
    # Answered and overdue requests have a deadline in the past; an open one on time, in the future.
    due_at = NOW + datetime.timedelta(days=1) if status == R.OPEN and not overdue else NOW - datetime.timedelta(hours=1)
    return RecognitionRequest.objects.create(
        alliance=alliance,
        trial=site.trial,
        site=site,
        committee=committee,
        subject=Submission.Kind.INITIAL,
        status=status,
        received_at=received,
        remind_at=received,
        due_at=due_at,
        late=late,
        response_working_hours=hours,
    )


def test_timeliness_by_alliance_and_institution(django_assert_max_num_queries):
    a, b = InstitutionFactory(), InstitutionFactory()
    committee_a, committee_b = EthicsCommitteeFactory(institution=a), EthicsCommitteeFactory(institution=b)
    alliance = AllianceFactory(members=[committee_a, committee_b])
    hours = [Decimal(h) for h in ("5", "20", "30", "70")]
    for h in hours[:3]:
        make(alliance, committee_a, status=R.RECOGNISED, hours=h)
    make(alliance, committee_b, status=R.DECLINED, hours=hours[3], late=True)
    make(alliance, committee_b, status=R.OPEN)  # still within its deadline
    make(alliance, committee_b, status=R.OPEN, overdue=True)
    make(alliance, committee_b, status=R.WITHDRAWN)  # not counted

    with django_assert_max_num_queries(1):
        (row,) = recognition_timeliness(requests=RecognitionRequest.objects.all(), by="alliance", now=NOW)
    assert (row["received"], row["answered_on_time"], row["answered_late"], row["open"], row["overdue"]) == (
        6,
        3,
        1,
        1,
        1,
    )
    expected = statistics.quantiles([float(h) for h in hours], n=100, method="inclusive")
    assert row["median_working_hours"] == Decimal(str(statistics.median([float(h) for h in hours]))).quantize(
        Decimal("0.01")
    )
    assert row["p90_working_hours"] == Decimal(str(expected[89])).quantize(Decimal("0.01"))

    by_institution = {
        r["group_id"]: r
        for r in recognition_timeliness(requests=RecognitionRequest.objects.all(), by="institution", now=NOW)
    }
    assert by_institution[a.pk]["answered_on_time"] == 3 and by_institution[a.pk]["median_working_hours"] == 20
    assert by_institution[b.pk]["overdue"] == 1 and by_institution[b.pk]["p90_working_hours"] == 70
