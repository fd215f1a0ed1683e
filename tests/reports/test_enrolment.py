"""Enrolment against targets, checked against sums made in the test from the ledger entries the services wrote."""

import datetime
from collections import defaultdict

import pytest
import time_machine

from cgtclinic.roles import Role
from tests.factories.cgtclinic import UserFactory
from tests.factories.trials import TrialSiteFactory, approve_site, trial_with_history
from tests.reports.helpers import report
from trials import enrolment
from trials.models import EnrolmentEntry, Trial, TrialSite

pytestmark = pytest.mark.django_db
D = datetime.date
KINDS = ("screened", "enrolled", "screen_failed", "withdrawn", "completed")


@pytest.fixture(autouse=True)
def today():
    with time_machine.travel(datetime.datetime(2026, 3, 2, 10, tzinfo=datetime.timezone(datetime.timedelta(hours=8)))):
        yield


def active_trial(lead, **kwargs):
    trial = trial_with_history(
        [
            (Trial.Status.SUBMITTED, D(2024, 11, 1)),
            (Trial.Status.UNDER_REVIEW, D(2024, 11, 10)),
            (Trial.Status.APPROVED, D(2024, 12, 1)),
            (Trial.Status.ACTIVE, D(2025, 1, 10)),
        ],
        lead_institution=lead,
        **kwargs,
    )
    approve_site(trial.sites.get(), D(2024, 12, 20))
    return trial


@pytest.fixture
def ledger(region, institution, neighbour, outsider):
    """Two trials with sites here and outside; events over several months, with a correction."""
    office = UserFactory(role=Role.RESEARCH_OFFICE, institution=institution)
    neighbour_office = UserFactory(role=Role.RESEARCH_OFFICE, institution=neighbour)
    outside_office = UserFactory(role=Role.RESEARCH_OFFICE, institution=outsider)
    first = active_trial(institution, target_enrolment=40)
    TrialSite.objects.filter(trial=first).update(site_target=20)
    lead = first.sites.get()
    second_site = approve_site(TrialSiteFactory(trial=first, institution=neighbour, site_target=12), D(2025, 1, 5))
    outside_site = approve_site(TrialSiteFactory(trial=first, institution=outsider, site_target=8), D(2025, 1, 5))
    second = active_trial(outsider, target_enrolment=10)
    here = approve_site(TrialSiteFactory(trial=second, institution=neighbour, site_target=6), D(2025, 2, 1))
    idle = TrialSiteFactory(trial=second, institution=institution, site_target=4)  # no enrolment yet

    def add(site, actor, kind, day, count=1):
        return enrolment.enrolment_report(site=site, actor=actor, kind=kind, occurred_on=day, count=count)

    add(lead, office, "screened", D(2025, 2, 1), 6)
    add(lead, office, "screen_failed", D(2025, 2, 3))
    add(lead, office, "enrolled", D(2025, 2, 10), 4)
    wrong = add(lead, office, "enrolled", D(2025, 3, 3), 2)
    enrolment.enrolment_reverse(entry=wrong, actor=office, reason="重复录入")
    add(lead, office, "enrolled", D(2025, 3, 4), 1)
    add(lead, office, "withdrawn", D(2025, 4, 1))
    add(second_site, neighbour_office, "screened", D(2025, 3, 1), 3)
    add(second_site, neighbour_office, "enrolled", D(2025, 3, 15), 3)
    add(second_site, neighbour_office, "completed", D(2026, 1, 10))
    add(outside_site, outside_office, "enrolled", D(2025, 3, 1), 5)
    add(here, neighbour_office, "screened", D(2025, 5, 1), 2)
    add(here, neighbour_office, "enrolled", D(2025, 5, 2), 2)
    return {"first": first, "second": second, "idle": idle}


def sites_in(region):
    return [s for s in TrialSite.objects.select_related("trial", "institution") if s.institution.region_id == region.pk]


def ledger_sums(region, key, *, since=None):
    """Net counts per group from the ledger rows, corrections subtracted."""
    sums = defaultdict(lambda: dict.fromkeys(KINDS, 0))
    for entry in EnrolmentEntry.objects.select_related("site__institution"):
        if entry.site.institution.region_id != region.pk or (since and entry.occurred_on < since):
            continue
        sums[key(entry)][entry.kind] += -entry.count if entry.reverses_id else entry.count
    return sums


def targets(region, key):
    total = defaultdict(int)
    for site in sites_in(region):
        total[key(site)] += site.site_target
    return total


def check_rows(data, region, name, key_of_site, key_of_entry, *, since=None):
    sums = ledger_sums(region, key_of_entry, since=since)
    goals = targets(region, key_of_site)
    rows = {row[name]: row for row in data["rows"]}
    assert set(rows) == set(goals)
    for key, goal in goals.items():
        row = rows[key]
        counts = sums.get(key, dict.fromkeys(KINDS, 0))
        assert {kind: row[kind] for kind in KINDS} == counts, key
        assert row["site_target"] == goal
        assert row["on_study"] == counts["enrolled"] - counts["withdrawn"] - counts["completed"]
        assert row["percent_of_target"] == (round(counts["enrolled"] * 100 / goal, 1) if goal else None)


def test_by_trial_current_counts(ledger, regulator, region):
    data = report(regulator, "enrolment")
    check_rows(data, region, "trial_id", lambda s: s.trial_id, lambda e: e.trial_id)
    first = next(row for row in data["rows"] if row["trial_id"] == ledger["first"].pk)
    assert first["trial_target"] == ledger["first"].target_enrolment
    assert first["sites"] == 2  # its site outside the region is not counted
    assert first["last_enrolled_on"] == "2025-03-15"


def test_by_site_and_institution(ledger, regulator, region):
    check_rows(report(regulator, "enrolment", group_by="site"), region, "site_id", lambda s: s.pk, lambda e: e.site_id)
    check_rows(
        report(regulator, "enrolment", group_by="institution"),
        region,
        "institution_id",
        lambda s: s.institution_id,
        lambda e: e.site.institution_id,
    )


@pytest.mark.parametrize("group_by", ["trial", "site", "institution"])
def test_a_period_counts_the_ledger_events_in_it(ledger, regulator, region, group_by):
    data = report(regulator, "enrolment", group_by=group_by, occurred_from="2025-03-01", occurred_to="2025-12-31")
    key_of_site = {"trial": lambda s: s.trial_id, "site": lambda s: s.pk, "institution": lambda s: s.institution_id}
    key_of_entry = {
        "trial": lambda e: e.trial_id,
        "site": lambda e: e.site_id,
        "institution": lambda e: e.site.institution_id,
    }
    in_period = ledger_sums(
        region, lambda e: None if e.occurred_on <= D(2025, 12, 31) else "later", since=D(2025, 3, 1)
    )[None]
    check_rows(data, region, f"{group_by}_id", key_of_site[group_by], _until(key_of_entry[group_by]))
    assert {kind: data["summary"][kind] for kind in KINDS} == in_period


def _until(key):
    """Entries after the period's end go to a group no row has."""
    return lambda entry: key(entry) if D(2025, 3, 1) <= entry.occurred_on <= D(2025, 12, 31) else ("out", entry.pk)


def test_by_month_with_cumulative_enrolment(ledger, regulator, region):
    data = report(regulator, "enrolment", group_by="month")
    months = ledger_sums(region, lambda e: e.occurred_on.strftime("%Y-%m"))
    assert [row["month"] for row in data["rows"]] == sorted(months)
    cumulative = 0
    for row in data["rows"]:
        assert {kind: row[kind] for kind in KINDS} == months[row["month"]]
        cumulative += months[row["month"]]["enrolled"]
        assert row["enrolled_cumulative"] == cumulative
    assert data["summary"]["enrolled"] == cumulative
    assert data["summary"]["site_target"] == sum(s.site_target for s in sites_in(region))


def test_summary_of_current_counts(ledger, regulator, region):
    summary = report(regulator, "enrolment")["summary"]
    everything = ledger_sums(region, lambda e: None)[None]
    here = sites_in(region)
    assert {kind: summary[kind] for kind in KINDS} == everything
    assert summary["sites"] == len(here)
    assert summary["trials"] == len({s.trial_id for s in here})
    assert summary["site_target"] == sum(s.site_target for s in here)
    assert summary["percent_of_target"] == round(everything["enrolled"] * 100 / summary["site_target"], 1)


def test_filters_by_trial_and_institution(ledger, regulator, institution):
    data = report(regulator, "enrolment", group_by="site", trial=ledger["second"].pk)
    assert {row["trial_id"] for row in data["rows"]} == {ledger["second"].pk}
    data = report(regulator, "enrolment", group_by="site", institution=institution.pk)
    assert {row["institution_id"] for row in data["rows"]} == {institution.pk}
    idle = next(row for row in data["rows"] if row["site_id"] == ledger["idle"].pk)
    assert (idle["enrolled"], idle["percent_of_target"], idle["last_enrolled_on"]) == (0, 0.0, None)
