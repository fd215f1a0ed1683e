"""Start-up time per site against figures worked out in the test from each site's milestone dates."""

import datetime

import pytest
import time_machine

from cgtclinic.models import PolicyParameter
from tests.factories.cgtclinic import InstitutionFactory
from tests.factories.subsidies import STARTUP_TARGET_CODE, startup_targets
from tests.factories.trials import TrialFactory, TrialSiteFactory
from tests.reports.helpers import median, percentile, report
from trials.models import Trial, TrialSite

pytestmark = pytest.mark.django_db
TODAY = datetime.date(2026, 3, 2)
D = datetime.date
STAGES = ("ethics", "contract", "initiation", "first_patient")
MILESTONES = ("submission_received_on", "ethics_approved_on", "contract_signed_on", "site_initiated_on")
STAGE_END = dict(zip(STAGES, (*MILESTONES[1:], "first_patient_in_on"), strict=True))
STOPPED = {"enrolment_closed", "completed", "terminated", "withdrawn", "draft"}


@pytest.fixture(autouse=True)
def today():
    with time_machine.travel(datetime.datetime(2026, 3, 2, 10, tzinfo=datetime.timezone(datetime.timedelta(hours=8)))):
        yield


@pytest.fixture
def startup_world(region, institution, neighbour, outsider):
    startup_targets(region)  # 28, then 25, then 20 weeks
    active = TrialFactory(lead_institution=institution, status=Trial.Status.ACTIVE)
    stopped = TrialFactory(lead_institution=neighbour, status=Trial.Status.TERMINATED)
    TrialSite.objects.filter(trial=active).update(
        submission_received_on=D(2024, 6, 1),
        ethics_approved_on=D(2024, 7, 1),
        contract_signed_on=D(2024, 8, 1),
        site_initiated_on=D(2024, 10, 1),
        first_patient_in_on=D(2024, 11, 1),
    )
    sites = [
        # Initiated late against 20 weeks; the contract was never recorded; waiting for its first patient.
        TrialSiteFactory(
            trial=active,
            institution=neighbour,
            submission_received_on=D(2025, 5, 1),
            ethics_approved_on=D(2025, 9, 1),
            site_initiated_on=D(2025, 12, 1),
        ),
        # Still waiting for its ethics approval.
        TrialSiteFactory(
            trial=TrialFactory(lead_institution=outsider, status=Trial.Status.ACTIVE),
            institution=institution,
            submission_received_on=D(2025, 12, 1),
        ),
        # Started before any target was in force.
        TrialSiteFactory(
            trial=TrialFactory(lead_institution=neighbour, status=Trial.Status.COMPLETED),
            institution=institution,
            submission_received_on=D(2023, 1, 1),
            site_initiated_on=D(2023, 6, 1),
            first_patient_in_on=D(2023, 7, 1),
        ),
        # Its trial was terminated before the site started: not waiting in any stage.
        TrialSiteFactory(
            trial=stopped,
            institution=institution,
            submission_received_on=D(2025, 6, 1),
            ethics_approved_on=D(2025, 7, 1),
        ),
        # Outside the region, and without a submission: not counted.
        TrialSiteFactory(trial=active, institution=outsider, submission_received_on=D(2025, 1, 1)),
        TrialSiteFactory(trial=stopped, institution=InstitutionFactory(region=region)),
    ]
    return sites


def target_for(site) -> float | None:
    try:
        value = PolicyParameter.value_for(
            STARTUP_TARGET_CODE, region=site.institution.region, on=site.submission_received_on
        )
    except PolicyParameter.DoesNotExist:
        return None
    return float(value)


def expected(site) -> dict:
    """The report's figures for one site, worked out from its dates."""
    dates = {name: getattr(site, name) for name in (*MILESTONES, "first_patient_in_on")}
    done = {}
    for position, stage in enumerate(STAGES):
        end = dates[STAGE_END[stage]]
        earlier = [dates[name] for name in MILESTONES[: position + 1] if dates[name]]
        done[stage] = (end - earlier[-1]).days if end else None
    waiting = site.trial.status not in STOPPED and dates["first_patient_in_on"] is None
    current = None
    if waiting:
        reached = [name for name in MILESTONES if dates[name]]
        current = STAGES[MILESTONES.index(reached[-1])]
    spent = dict(done)
    if current:
        latest = max(d for d in dates.values() if d)
        spent[current] = (TODAY - latest).days
    longest = max((v for v in spent.values() if v is not None), default=None)
    startup = (
        (dates["site_initiated_on"] - dates["submission_received_on"]).days if dates["site_initiated_on"] else None
    )
    target = target_for(site)
    return {
        "startup_days": startup,
        "days_to_first_patient": (
            (dates["first_patient_in_on"] - dates["submission_received_on"]).days
            if dates["first_patient_in_on"]
            else None
        ),
        "target_weeks": target,
        "within_target": None if startup is None or target is None else startup <= target * 7,
        **{f"{stage}_days": spent[stage] for stage in STAGES},
        "current_stage": current,
        "slowest_stage": next(stage for stage in STAGES if spent[stage] == longest) if longest is not None else None,
        "done": done,
    }


def counted_sites(region):
    return [
        site
        for site in TrialSite.objects.select_related("trial", "institution__region").order_by("pk")
        if site.institution.region_id == region.pk and site.submission_received_on
    ]


def test_each_site_against_its_dates(startup_world, regulator, region):
    data = report(regulator, "startup")
    rows = {row["site_id"]: row for row in data["rows"]}
    sites = counted_sites(region)
    assert set(rows) == {site.pk for site in sites}
    for site in sites:
        want = expected(site)
        got = {name: rows[site.pk][name] for name in want if name != "done"}
        assert got == {name: value for name, value in want.items() if name != "done"}, site
    # Spot checks of the rules themselves: targets by submission date, time charged across a skipped milestone.
    late = rows[startup_world[0].pk]
    assert (late["target_weeks"], late["within_target"]) == (20, False)
    assert late["contract_days"] is None and late["initiation_days"] == 91
    assert (late["current_stage"], late["first_patient_days"], late["slowest_stage"]) == ("first_patient", 91, "ethics")
    assert rows[startup_world[2].pk]["target_weeks"] is None
    assert rows[startup_world[3].pk]["current_stage"] is None


def test_summary_medians_share_and_slowest_stage(startup_world, regulator, region):
    summary = report(regulator, "startup")["summary"]
    wanted = [expected(site) for site in counted_sites(region)]
    startup = [w["startup_days"] for w in wanted if w["startup_days"] is not None]
    first = [w["days_to_first_patient"] for w in wanted if w["days_to_first_patient"] is not None]
    measured = [w for w in wanted if w["startup_days"] is not None and w["target_weeks"] is not None]
    within = [w for w in measured if w["within_target"]]
    assert summary["sites"] == len(wanted)
    assert summary["sites_initiated"] == len(startup)
    assert summary["sites_first_patient_in"] == len(first)
    assert summary["sites_waiting"] == sum(w["current_stage"] is not None for w in wanted)
    assert summary["median_startup_days"] == round(median(startup), 1)
    assert summary["p90_startup_days"] == round(percentile(startup, 0.9), 1)
    assert summary["median_days_to_first_patient"] == round(median(first), 1)
    assert summary["p90_days_to_first_patient"] == round(percentile(first, 0.9), 1)
    assert (summary["sites_with_target"], summary["sites_within_target"]) == (len(measured), len(within))
    assert summary["within_target_share"] == round(len(within) / len(measured), 4)
    medians = {}
    for stage in STAGES:
        done = [w["done"][stage] for w in wanted if w["done"][stage] is not None]
        medians[stage] = median(done)
        assert summary[f"median_{stage}_days"] == (None if not done else round(median(done), 1))
        assert summary[f"slowest_{stage}"] == sum(w["slowest_stage"] == stage for w in wanted)
    assert summary["slowest_stage"] == max((s for s in STAGES if medians[s] is not None), key=medians.get)


def test_a_given_target_replaces_the_policy_value(startup_world, regulator, region):
    data = report(regulator, "startup", target_weeks=30)
    initiated = [row for row in data["rows"] if row["startup_days"] is not None]
    assert {row["target_weeks"] for row in data["rows"]} == {30}
    assert data["summary"]["sites_within_target"] == sum(row["startup_days"] <= 30 * 7 for row in initiated)


def test_filters_and_pages(startup_world, regulator, institution):
    mine = report(regulator, "startup", institution=institution.pk)
    assert {row["institution_id"] for row in mine["rows"]} == {institution.pk}
    recent = report(regulator, "startup", submitted_from="2025-01-01")
    assert all(row["submission_received_on"] >= "2025-01-01" for row in recent["rows"])
    assert recent["summary"]["sites"] == len(recent["rows"])
    first = report(regulator, "startup", page_size=2)
    second = report(regulator, "startup", page_size=2, page=2)
    assert first["pagination"] == {"page": 1, "page_size": 2, "count": first["summary"]["sites"]}
    assert not {row["site_id"] for row in first["rows"]} & {row["site_id"] for row in second["rows"]}
