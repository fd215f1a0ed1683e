"""Each report's ``bench_sql`` (the benchmark's yardstick for the API/SQL ratio) computes the figures the JSON
report returns to a regulator of the region."""

from decimal import Decimal

import pytest
import time_machine
from django.db import connection

from cgtclinic.api.reports import registered_reports
from tests.reports.helpers import report
from tests.reports.world import NOW, RegionWorld

pytestmark = pytest.mark.django_db
BENCH = {view.name: view.bench_sql for view in registered_reports()}


@pytest.fixture
def world(region):
    with time_machine.travel(NOW, tick=False):
        built = RegionWorld(region)
        built.grow(3)
    return built


def bench(name: str, region) -> list[dict]:
    """The rows of the report's bench_sql (of its last statement when it has several, as bench/run.py runs them)."""
    return bench_statements(name, region)[-1]


def bench_statements(name: str, region) -> list[list[dict]]:
    results = []
    with connection.cursor() as cursor:
        for statement in BENCH[name].split(";\n"):
            cursor.execute(statement, {"region_id": region.pk})
            names = [column[0] for column in cursor.description]
            results.append([dict(zip(names, row, strict=True)) for row in cursor.fetchall()])
    return results


def split(rows, key):
    """Rows of a GROUPING SETS result, and its grand-total row (the one whose key is NULL)."""
    total = [row for row in rows if row[key] is None]
    return [row for row in rows if row[key] is not None], (total[0] if total else None)


def same(a, b):
    if a is None or b is None:
        return a is b
    return float(a) == pytest.approx(float(b), abs=0.051)


def test_bench_sql_names_every_report():
    assert set(BENCH) == {view.name for view in registered_reports()}


def test_pipeline(world, regulator, region):
    data = report(regulator, "pipeline")
    rows, total = split(bench("pipeline", region), "status")
    figures = ("trials", "sites", "lead_sites", "sites_ethics_approved", "sites_initiated", "sites_first_patient_in")
    assert {(r["status"], r["kind"], r["therapy_category"]): [r[f] for f in figures] for r in rows} == {
        (r["status"], r["kind"], r["therapy_category"]): [r[f] for f in figures] for r in data["rows"]
    }
    assert [total[f] for f in ("trials", "sites", "institutions")] == [
        data["summary"][f] for f in ("trials", "sites", "institutions")
    ]


def test_startup(world, regulator, region):
    (row,) = bench("startup", region)
    summary = report(regulator, "startup")["summary"]
    for name in (
        "sites",
        "sites_initiated",
        "sites_first_patient_in",
        "median_startup_days",
        "p90_startup_days",
        "median_days_to_first_patient",
        "sites_with_target",
        "sites_within_target",
        "median_ethics_days",
        "median_contract_days",
        "median_initiation_days",
        "median_first_patient_days",
    ):
        assert same(row[name], summary[name]), name


def test_enrolment(world, regulator, region):
    data = report(regulator, "enrolment", page_size=1000)
    rows, total = split(bench("enrolment", region), "trial_id")
    figures = ("sites", "site_target", "trial_target", "screened", "enrolled", "withdrawn", "completed")
    assert {r["trial_id"]: [r[f] for f in figures] for r in rows} == {
        r["trial_id"]: [r[f] for f in figures] for r in data["rows"]
    }
    assert [total[f] for f in ("sites", "site_target", "enrolled")] == [
        data["summary"][f] for f in ("sites", "site_target", "enrolled")
    ]


def test_policy_targets(world, regulator, region):
    data = report(regulator, "policy-targets")
    assert {r["metric"]: r["achieved"] for r in bench("policy-targets", region)} == {
        r["metric"]: r["achieved"] for r in data["rows"]
    }


def test_recognition(world, regulator, region):
    data = report(regulator, "recognition-timeliness")
    grouped, listed = bench_statements("recognition-timeliness", region)
    rows, total = split(grouped, "group_id")
    figures = ("received", "answered_on_time", "answered_late", "open", "overdue")
    assert {r["group_id"]: [r[f] for f in figures] for r in rows} == {
        r["group_id"]: [r[f] for f in figures] for r in data["rows"]
    }
    for row in rows:
        want = next(r for r in data["rows"] if r["group_id"] == row["group_id"])
        for name in ("median_working_hours", "p90_working_hours"):
            assert same(row[name], want[name]), name
    assert [total[f] for f in figures] == [data["summary"][f] for f in figures]
    for name in ("median_working_hours", "p90_working_hours"):
        assert same(total[name], data["summary"][name]), name
    overdue = data["overdue_requests"]
    assert listed, "the world has overdue requests"
    assert [r["request_id"] for r in listed] == [r["request_id"] for r in overdue["rows"]]
    assert listed[0]["overdue"] == overdue["count"] == data["summary"]["overdue"]
    # The bare SQL reads now() a moment after the API did.
    assert all(same(r["overdue_days"], o["overdue_days"]) for r, o in zip(listed, overdue["rows"], strict=True))
    assert {name for name in listed[0] if name != "overdue"} == {column["name"] for column in overdue["columns"]}


def test_turnaround(world, regulator, region):
    data = report(regulator, "ethics-turnaround")
    rows, total = split(bench("ethics-turnaround", region), "review_type")
    figures = ("decided", "median_days", "p90_days", "mean_days", "max_days", "in_review")
    want = {r["review_type"]: r for r in data["rows"]}
    for row in rows:
        assert all(same(row[f], want[row["review_type"]][f]) for f in figures), row
    assert all(same(total[f], data["summary"][f]) for f in figures)


def test_subsidies(world, regulator, region):
    data = report(regulator, "subsidies")
    rows, total = split(bench("subsidies", region), "program_id")
    figures = (
        "claims",
        "claims_submitted",
        "amount_claimed",
        "amount_approved",
        "counted_toward_cap",
        "institution_year_cap",
        "room_under_institution_year_cap",
    )

    def key(row):
        return (row["program_id"], row["institution_id"], row["year"])

    assert {key(r): [Decimal(str(r[f])) for f in figures] for r in rows} == {
        key(r): [Decimal(str(r[f])) for f in figures] for r in data["rows"]
    }
    summary = ("claims", "claims_paid", "amount_claimed", "amount_approved", "amount_paid", "institutions", "programs")
    assert [Decimal(str(total[f])) for f in summary] == [Decimal(str(data["summary"][f])) for f in summary]


def test_subsidy_projects(world, regulator, region):
    data = report(regulator, "subsidy-projects")
    figures = ("claims", "patients_claimed", "amount_counted", "project_cap", "room_under_project_cap")

    def key(row):
        return (row["program_id"], row["institution_id"], row["trial_id"])

    listed = bench("subsidy-projects", region)
    assert {key(r): [Decimal(str(r[f])) for f in figures] for r in listed} == {
        key(r): [Decimal(str(r[f])) for f in figures] for r in data["rows"]
    }
    totals = {
        "projects": "projects",
        "patients_claimed": "total_patients_claimed",
        "amount_counted": "total_amount_counted",
        "projects_with_cap": "projects_with_cap",
        "projects_at_cap": "projects_at_cap",
        "room_under_project_caps": "room_under_project_caps",
    }
    assert {f: Decimal(str(listed[0][column])) for f, column in totals.items()} == {
        f: Decimal(str(data["summary"][f])) for f in totals
    }


def test_research_filings(world, regulator, region):
    with time_machine.travel(NOW, tick=False):
        data = report(regulator, "research-filings")
        rows = bench("research-filings", region)
    # The bench reads the database's clock, which the test cannot move: open filings are compared in all.
    figures = ("due", "filed_on_time", "filed_late")
    assert {r["institution_id"]: [*(r[f] for f in figures), r["overdue"] + r["open"]] for r in rows} == {
        r["institution_id"]: [*(r[f] for f in figures), r["overdue"] + r["open"]] for r in data["rows"]
    }
