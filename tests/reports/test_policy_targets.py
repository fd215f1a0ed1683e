"""Policy targets against the approvals counted in the test from the trials' lifecycle history."""

import datetime

import pytest
import time_machine

from cgtclinic.models import PolicyTarget
from tests.factories.cgtclinic import PolicyTargetFactory
from tests.factories.trials import trial_with_history
from tests.reports.helpers import report
from trials.models import Trial, TrialStatusChange

pytestmark = pytest.mark.django_db
D = datetime.date
S = Trial.Status
M = PolicyTarget.Metric
COUNTED_KINDS = {M.NEW_TRIAL_APPROVALS: {"registration"}, M.NEW_CLINICAL_FILINGS: {"iit", "other"}}
TODAY = D(2026, 7, 1)


@pytest.fixture(autouse=True)
def today():
    with time_machine.travel(datetime.datetime(2026, 7, 1, 10, tzinfo=datetime.timezone(datetime.timedelta(hours=8)))):
        yield


def approved(lead, day, kind, *, again=None):
    history = [(S.SUBMITTED, day - datetime.timedelta(days=30)), (S.UNDER_REVIEW, day - datetime.timedelta(days=20))]
    history.append((S.APPROVED, day))
    if again:
        history += [(S.SUSPENDED, again - datetime.timedelta(days=10)), (S.APPROVED, again)]
    return trial_with_history(history, lead_institution=lead, kind=kind)


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
    approved(institution, D(2024, 5, 1), "registration")
    approved(neighbour, D(2025, 2, 1), "registration", again=D(2025, 8, 1))  # counted once
    approved(institution, D(2023, 12, 31), "registration")  # before the period
    approved(institution, D(2026, 2, 1), "iit")
    approved(neighbour, D(2024, 6, 1), "other")  # a filing, but before the filings' period
    approved(outsider, D(2024, 6, 1), "registration")  # another region's
    trial_with_history([(S.SUBMITTED, D(2025, 1, 1))], lead_institution=institution, kind="registration")
    return approvals, filings, elsewhere


def achieved(target) -> int:
    """Trials led in the target's region whose first approval falls in its period, counted from the history."""
    first = {}
    for change in TrialStatusChange.objects.filter(to_status=S.APPROVED).select_related("trial__lead_institution"):
        first[change.trial] = min(first.get(change.trial, change.at), change.at)
    start, end = target.period_start, D(target.deadline_year, 12, 31)
    return sum(
        1
        for trial, at in first.items()
        if trial.lead_institution.region_id == target.region_id
        and trial.kind in COUNTED_KINDS[target.metric]
        and start <= at.astimezone(datetime.timezone(datetime.timedelta(hours=8))).date() <= end
    )


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
    assert rows[M.NEW_CLINICAL_FILINGS]["achieved"] == 1
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
