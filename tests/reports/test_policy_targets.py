"""Policy targets against the approvals and filings counted in the test: NMPA approval (or implied permission)
dates and new-technology filing dates, never the lifecycle step "approved"."""

import datetime

import pytest
import time_machine

from cgtclinic.models import PolicyTarget
from tests.factories.cgtclinic import PolicyTargetFactory
from tests.factories.trials import FilingObligationFactory, TrialFactory, trial_with_history
from tests.reports.helpers import report
from trials.models import FilingObligation, Trial

pytestmark = pytest.mark.django_db
D = datetime.date
S = Trial.Status
M = PolicyTarget.Metric
F = FilingObligation
TODAY = D(2026, 7, 1)


@pytest.fixture(autouse=True)
def today():
    with time_machine.travel(datetime.datetime(2026, 7, 1, 10, tzinfo=datetime.timezone(datetime.timedelta(hours=8)))):
        yield


def nmpa_approved(lead, day, kind="registration"):
    return TrialFactory(
        lead_institution=lead, kind=kind, nmpa_approved_on=day, nmpa_approval_number=f"CXSL{day:%y%m%d}"
    )


def new_technology_filed(lead, day, status=F.Status.FILED):
    trial = TrialFactory(lead_institution=lead, is_new_technology=True)
    return FilingObligationFactory(
        trial=trial,
        kind=F.Kind.NEW_TECHNOLOGY,
        basis_on=day,
        status=status,
        filed_on=day if status == F.Status.FILED else None,
    )


@pytest.fixture
def targets(region, other_region, institution, neighbour, outsider):
    approvals = PolicyTargetFactory(
        region=region, metric=M.NEW_TRIAL_APPROVALS, target_value=4, period_start=D(2024, 1, 1), deadline_year=2026
    )
    filings = PolicyTargetFactory(
        region=region, metric=M.NEW_CLINICAL_FILINGS, target_value=30, period_start=D(2026, 1, 1), deadline_year=2028
    )
    elsewhere = PolicyTargetFactory(
        region=other_region, metric=M.NEW_TRIAL_APPROVALS, target_value=2, period_start=D(2024, 1, 1)
    )
    nmpa_approved(institution, D(2024, 5, 1))
    nmpa_approved(neighbour, D(2025, 2, 1), kind="iit")  # an implied permission for an IIT counts too
    nmpa_approved(institution, D(2023, 12, 31))  # before the period
    nmpa_approved(outsider, D(2024, 6, 1))  # another region's
    nmpa_approved(outsider, D(2025, 6, 1))
    # Approved in the lifecycle, without an NMPA approval: not counted.
    trial_with_history(
        [(S.SUBMITTED, D(2025, 1, 1)), (S.UNDER_REVIEW, D(2025, 1, 5)), (S.APPROVED, D(2025, 2, 1))],
        lead_institution=institution,
        kind="registration",
    )
    new_technology_filed(institution, D(2026, 5, 20))
    new_technology_filed(neighbour, D(2026, 6, 2))
    new_technology_filed(neighbour, D(2025, 12, 31))  # before the filings' period
    new_technology_filed(institution, D(2026, 6, 3), status=F.Status.OPEN)  # due, not filed
    new_technology_filed(outsider, D(2026, 6, 1))
    return approvals, filings, elsewhere


def achieved(target) -> int:
    """Counted in the test: NMPA approval dates for approvals, new-technology filing dates for filings."""
    start, end = target.period_start, D(target.deadline_year, 12, 31)
    if target.metric == M.NEW_TRIAL_APPROVALS:
        days = [
            t.nmpa_approved_on
            for t in Trial.objects.filter(lead_institution__region=target.region)
            if t.nmpa_approved_on
        ]
    else:
        days = [
            f.filed_on
            for f in F.objects.filter(trial__lead_institution__region=target.region, kind=F.Kind.NEW_TECHNOLOGY)
            if f.status == F.Status.FILED
        ]
    return sum(1 for day in days if start <= day <= end)


def test_targets_against_the_data(targets, regulator, region):
    approvals, filings, _elsewhere = targets
    data = report(regulator, "policy-targets")
    rows = {row["metric"]: row for row in data["rows"]}
    assert set(rows) == {approvals.metric, filings.metric}
    for target in (approvals, filings):
        row = rows[target.metric]
        count = achieved(target)
        start, end = target.period_start, D(target.deadline_year, 12, 31)
        expected_now = round(target.target_value * ((TODAY - start).days + 1) / ((end - start).days + 1), 1)
        assert row["achieved"] == count
        assert row["target_value"] == target.target_value
        assert row["remaining"] == max(target.target_value - count, 0)
        assert row["percent_achieved"] == round(count * 100 / target.target_value, 1)
        assert row["expected_by_now"] == expected_now
        assert row["on_track"] is (count >= expected_now)
        assert row["met"] is (count >= target.target_value)
        assert row["days_left"] == (end - TODAY).days
        assert (row["period_start"], row["period_end"]) == (start.isoformat(), end.isoformat())
        assert (row["region_code"], row["source_clause"]) == (region.code, target.source_clause)
    assert rows[M.NEW_TRIAL_APPROVALS]["achieved"] == 2
    assert rows[M.NEW_CLINICAL_FILINGS]["achieved"] == 2
    assert data["summary"] == {
        "targets": 2,
        "met": sum(row["met"] for row in rows.values()),
        "on_track": sum(row["on_track"] for row in rows.values()),
    }


def test_system_administrator_sees_every_regions_targets(targets, system_admin):
    data = report(system_admin, "policy-targets")
    assert len(data["rows"]) == 3
    for target in targets:
        row = next(r for r in data["rows"] if r["region_code"] == target.region.code and r["metric"] == target.metric)
        assert row["achieved"] == achieved(target)
