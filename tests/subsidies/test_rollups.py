"""The claim rollups (subsidies.rollups) follow every claim write through the services: after random paths of
submissions, reviews, decisions and payments they equal a recomputation from the claims, and the regulator's two
subsidy reports give the figures computed from the claims and lines themselves."""

import random
from collections import defaultdict
from decimal import Decimal

import pytest

from cgtclinic import rollups
from subsidies import services
from subsidies.models import Claim, ClaimLine, ClaimYearTotal, ProjectClaimTotal
from tests.factories.subsidies import CLAIM_YEAR, run
from tests.reports.helpers import report

pytestmark = pytest.mark.django_db
C = Claim.Status
NAMES = ["subsidies.claim_year_totals", "subsidies.project_claim_totals"]
# The steps after submission, each followed by what may come next (None: the claim's path ends).
NEXT = {
    "submit": ["start_review", None],
    "start_review": [services.APPROVE, services.PARTIAL, services.REJECT, None],
    services.APPROVE: ["pay", "pay_part", None],
    services.PARTIAL: ["pay", "pay_part", None],
    services.REJECT: [None],
    "pay_part": ["pay", None],
    "pay": [None],
}


def raw_claim_figures(claims) -> dict:
    """Per program, institution and year, from the claims themselves."""
    figures = defaultdict(lambda: {"claims": 0, "amount_claimed": Decimal(0), "amount_approved": Decimal(0)})
    for claim in claims:
        row = figures[(claim.program_id, claim.institution_id, claim.year)]
        row["claims"] += 1
        row["amount_claimed"] += claim.amount_claimed
        row["amount_approved"] += claim.amount_approved or 0
    return dict(figures)


def raw_project_amounts(claims) -> dict:
    amounts = defaultdict(Decimal)
    for line in ClaimLine.objects.filter(
        claim__in=claims.filter(status__in=Claim.COUNTING_STATUSES), status=ClaimLine.Status.ELIGIBLE
    ):
        amounts[line.trial_id] += line.approved_amount if line.approved_amount is not None else line.amount_computed
    return dict(amounts)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_rollups_equal_a_recomputation_after_random_claim_paths(seed, claim, research_office, regulator_user, program):
    rng = random.Random(seed)
    step, walked = "submit", claim
    while step is not None:
        walked = run(walked, research_office if step == "submit" else regulator_user, step)
        assert rollups.differences(NAMES) == {}, step
        step = rng.choice(NEXT[step])
    # A rejected claim releases its patients: the hospital claims them again, a second claim of the same pair.
    if walked.status == C.REJECTED:
        later = services.claim_open(actor=research_office, program=program, year=CLAIM_YEAR + 1)
        run(later, research_office, "submit")
    assert rollups.differences(NAMES) == {}

    submitted = Claim.objects.exclude(status=C.DRAFT)
    data = report(regulator_user, "subsidies")
    assert {
        (r["program_id"], r["institution_id"], r["year"]): {
            "claims": r["claims"],
            "amount_claimed": Decimal(r["amount_claimed"]),
            "amount_approved": Decimal(r["amount_approved"]),
        }
        for r in data["rows"]
    } == raw_claim_figures(submitted)
    projects = report(regulator_user, "subsidy-projects")
    assert {r["trial_id"]: Decimal(r["amount_counted"]) for r in projects["rows"]} == raw_project_amounts(submitted)

    # Rebuilt from the raw data, the rollups hold the same rows.
    before = sorted(ClaimYearTotal.objects.values_list("year", "status", "claim_count", "counted_rmb"))
    assert set(rollups.rebuild(NAMES)) == set(NAMES)
    assert sorted(ClaimYearTotal.objects.values_list("year", "status", "claim_count", "counted_rmb")) == before
    assert rollups.differences(NAMES) == {}


def test_differences_name_a_drifted_row(claim, research_office):
    run(claim, research_office, "submit")
    ProjectClaimTotal.objects.update(counted_rmb=Decimal("1.00"))
    found = rollups.differences(NAMES)
    assert list(found) == ["subsidies.project_claim_totals"]
    assert any(row.startswith("stale") for row in found["subsidies.project_claim_totals"])
    rollups.rebuild(NAMES)
    assert rollups.differences(NAMES) == {}
