"""Subsidy claims and per-project figures, against sums made in the test from the claims the services wrote."""

import datetime
from collections import defaultdict
from decimal import Decimal

import pytest
import time_machine

from cgtclinic.models import PolicyParameter
from cgtclinic.roles import Role
from subsidies import services
from subsidies.models import Claim, ClaimLine
from tests.factories.cgtclinic import UserFactory
from tests.factories.subsidies import completed_gene_trial, shanghai_program
from tests.reports.helpers import report

pytestmark = pytest.mark.django_db
TODAY = datetime.date(2026, 2, 10)
YEAR = 2025
C = Claim.Status
STATUSES = ("submitted", "under_review", "approved", "partially_approved", "rejected", "paid")
COUNTING = {C.SUBMITTED, C.UNDER_REVIEW, C.APPROVED, C.PARTIALLY_APPROVED, C.PAID}


@pytest.fixture(autouse=True)
def today():
    with time_machine.travel(datetime.datetime(2026, 2, 10, 10, tzinfo=datetime.timezone(datetime.timedelta(hours=8)))):
        yield


def office_of(institution):
    return UserFactory(role=Role.RESEARCH_OFFICE, institution=institution)


def submitted(program, office):
    return services.claim_submit(claim=services.claim_open(actor=office, program=program, year=YEAR), actor=office)


@pytest.fixture
def claims(region, other_region, institution, neighbour, outsider, regulator):
    program = shanghai_program(region)
    office, neighbour_office = office_of(institution), office_of(neighbour)
    completed_gene_trial(institution, enrolled=5, actor=office)
    completed_gene_trial(institution, enrolled=12, actor=office)  # over the project cap
    completed_gene_trial(neighbour, enrolled=3, actor=neighbour_office)

    paid = services.claim_start_review(claim=submitted(program, office), actor=regulator)
    paid = services.claim_decide(claim=paid, actor=regulator, decision=services.APPROVE)
    services.claim_pay(claim=paid, actor=regulator, amount=paid.amount_approved, paid_on=TODAY)
    rejected = services.claim_start_review(claim=submitted(program, neighbour_office), actor=regulator)
    services.claim_decide(claim=rejected, actor=regulator, decision=services.REJECT, note="材料不全")
    submitted(program, neighbour_office)
    services.claim_open(actor=office, program=program, year=YEAR)  # a draft: never counted

    elsewhere = shanghai_program(other_region)
    outside_office = office_of(outsider)
    completed_gene_trial(outsider, enrolled=2, actor=outside_office)
    submitted(elsewhere, outside_office)
    return program


def value(code, region, on) -> Decimal:
    return PolicyParameter.value_for(code, region=region, on=on)


def test_claims_per_program_institution_and_year(claims, regulator, region):
    data = report(regulator, "subsidies")
    mine = [
        c for c in Claim.objects.select_related("program") if c.program.region_id == region.pk and c.status != "draft"
    ]
    groups = defaultdict(list)
    for claim in mine:
        groups[(claim.program_id, claim.institution_id, claim.year)].append(claim)
    rows = {(r["program_id"], r["institution_id"], r["year"]): r for r in data["rows"]}
    assert set(rows) == set(groups)
    cap = value(claims.institution_year_cap_parameter, region, min(datetime.date(YEAR, 12, 31), TODAY))
    for key, group in groups.items():
        row = rows[key]
        counted = sum(
            (c.amount_approved if c.amount_approved is not None else c.amount_claimed)
            for c in group
            if c.status in COUNTING
        )
        assert row["claims"] == len(group)
        for status in STATUSES:
            assert row[f"claims_{status}"] == sum(c.status == status for c in group)
        assert Decimal(str(row["amount_claimed"])) == sum(c.amount_claimed for c in group)
        assert Decimal(str(row["amount_approved"])) == sum(c.amount_approved or 0 for c in group)
        assert Decimal(str(row["amount_paid"])) == sum(c.amount_paid or 0 for c in group)
        assert Decimal(str(row["counted_toward_cap"])) == counted
        assert Decimal(str(row["institution_year_cap"])) == cap
        assert Decimal(str(row["room_under_institution_year_cap"])) == max(cap - counted, 0)
        assert row["program_code"] == claims.code
    summary = data["summary"]
    assert summary["claims"] == len(mine)
    assert summary["claims_paid"] == 1 and summary["claims_rejected"] == 1 and summary["claims_submitted"] == 1
    assert Decimal(str(summary["amount_paid"])) == sum(c.amount_paid or 0 for c in mine)
    assert summary["institutions"] == len({c.institution_id for c in mine})


def test_status_filter_keeps_the_cap_whole(claims, regulator, institution):
    data = report(regulator, "subsidies", status="paid")
    assert data["summary"]["claims"] == 1
    row = next(r for r in data["rows"] if r["institution_id"] == institution.pk)
    paid = Claim.objects.get(institution=institution, status="paid")
    assert Decimal(str(row["counted_toward_cap"])) == paid.amount_approved
    neighbour_row = next(r for r in data["rows"] if r["institution_id"] != institution.pk)
    assert neighbour_row["claims"] == 0
    # The neighbour's submitted claim still takes its share of the yearly cap.
    assert Decimal(str(neighbour_row["counted_toward_cap"])) > 0


def test_projects_and_the_room_under_their_cap(claims, regulator, region):
    data = report(regulator, "subsidy-projects")
    lines = [
        line
        for line in ClaimLine.objects.select_related("claim__program")
        if line.claim.program.region_id == region.pk and line.claim.status in COUNTING and line.status == "eligible"
    ]
    cap = value(claims.project_cap_parameter, region, TODAY)
    projects = defaultdict(list)
    for line in lines:
        # The cap covers the project over all hospitals (the program's default scope): one row per project.
        per_hospital = line.claim.program.project_cap_scope == "project_per_hospital"
        projects[(line.claim.program_id, line.claim.institution_id if per_hospital else None, line.trial_id)].append(
            line
        )
    rows = {(r["program_id"], r["institution_id"], r["trial_id"]): r for r in data["rows"]}
    assert set(rows) == set(projects)
    at_cap = 0
    for key, group in projects.items():
        row = rows[key]
        taken = sum(
            line.approved_amount if line.approved_amount is not None else line.amount_computed for line in group
        )
        assert row["patients_claimed"] == sum(line.patients_claimed for line in group)
        assert Decimal(str(row["amount_counted"])) == taken
        assert Decimal(str(row["project_cap"])) == cap
        assert Decimal(str(row["room_under_project_cap"])) == max(cap - taken, 0)
        assert row["claims"] == len({line.claim_id for line in group})
        assert row["institutions"] == len({line.claim.institution_id for line in group})
        at_cap += taken >= cap
    assert at_cap == 1  # the trial that enrolled over the cap
    summary = data["summary"]
    assert summary["projects"] == len(projects)
    assert summary["projects_at_cap"] == at_cap
    assert summary["projects_with_cap"] == len(projects)


def test_system_administrator_reads_every_program(claims, system_admin):
    data = report(system_admin, "subsidies")
    assert data["summary"]["claims"] == Claim.objects.exclude(status="draft").count()
    assert data["summary"]["programs"] == 2
