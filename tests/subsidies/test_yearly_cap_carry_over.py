"""A line the institution's yearly cap cuts in part claims only the patients it is paid for (whole patients at the
rate); the others stay claimable next year. The reported case: ten patients, room for five under the year's cap."""

import datetime
from decimal import Decimal

import pytest
from django.utils import timezone, translation

from cgtclinic.models import PolicyParameter
from subsidies import exports, rules, services
from subsidies.models import ClaimLine
from tests.factories.subsidies import CLAIM_YEAR, completed_gene_trial

pytestmark = pytest.mark.django_db


def value(code, region) -> Decimal:
    return PolicyParameter.objects.get(code=code, region=region).value


def set_year_cap(region, amount: Decimal) -> None:
    PolicyParameter.objects.filter(code="subsidy_institution_year_cap_rmb", region=region).update(value=amount)


@pytest.fixture
def rate(program, region):
    return value("subsidy_per_patient_rmb", region)


@pytest.fixture
def ten(research_office, region, rate):
    """A project that enrolled exactly what its cap pays for (ten patients with Shanghai's values)."""
    fits = int(value("subsidy_project_cap_rmb", region) // rate)
    return completed_gene_trial(research_office.institution, enrolled=fits, actor=research_office), fits


def decide_and_pay(claim, office, regulator):
    services.claim_submit(claim=claim, actor=office)
    services.claim_start_review(claim=claim, actor=regulator)
    services.claim_decide(claim=claim, actor=regulator, decision=services.APPROVE)
    claim.refresh_from_db()
    return services.claim_pay(claim=claim, actor=regulator, amount=claim.balance, paid_on=timezone.localdate())


def test_only_the_patients_paid_for_are_claimed_and_the_rest_next_year(
    ten, research_office, regulator_user, program, region, rate
):
    trial, fits = ten
    half = fits // 2
    set_year_cap(region, rate * half)

    claim = services.claim_open(actor=research_office, program=program, year=CLAIM_YEAR)
    line = ClaimLine.objects.get(claim=claim, trial=trial)
    assert (line.amount_computed, line.patients_claimed) == (rate * half, half)
    assert line.explanation[-1] == {
        "code": "patients_deferred",
        "patients": fits - half,
        "paid_patients": half,
        "amount": str(rules.to_fen(rate * half)),
    }
    with translation.override("en"):
        figures = exports.claim_figures(claim)
    assert f"The other {fits - half} stay unclaimed" in figures.lines[0].explanation_text
    decide_and_pay(claim, research_office, regulator_user)

    next_year = services.claim_open(actor=research_office, program=program, year=CLAIM_YEAR + 1)
    carried = ClaimLine.objects.get(claim=next_year, trial=trial)
    assert (carried.previously_claimed, carried.patients_claimed) == (half, fits - half)
    assert carried.amount_computed == rate * (fits - half)
    assert [step["code"] for step in carried.explanation] == ["per_patient", "project_cap_checked"]
    # Over both years: every patient claimed once, and the project never above its cap.
    assert half + carried.patients_claimed == fits
    assert rate * half + carried.amount_computed <= value("subsidy_project_cap_rmb", region)


def test_a_remainder_below_one_patients_rate_is_not_paid(ten, research_office, program, region, rate):
    trial, fits = ten
    half = fits // 2
    set_year_cap(region, rate * half + rate / 2)

    claim = services.claim_open(actor=research_office, program=program, year=CLAIM_YEAR)
    line = ClaimLine.objects.get(claim=claim, trial=trial)
    assert (line.amount_computed, line.patients_claimed) == (rate * half, half)
    cap_step = line.explanation[-2]
    assert Decimal(cap_step["room"]) == rate * half + rate / 2
    with translation.override("en"):
        assert "a patient is paid in full or not at all" in rules.describe_step(cap_step)


def test_a_line_after_the_cut_claims_nothing_this_year(ten, research_office, program, region, rate):
    trial, fits = ten
    later = completed_gene_trial(
        research_office.institution, enrolled=2, actor=research_office, completed_on=datetime.date(2025, 9, 1)
    )
    set_year_cap(region, rate * (fits - 1))
    claim = services.claim_open(actor=research_office, program=program, year=CLAIM_YEAR)
    first, second = ClaimLine.objects.get(claim=claim, trial=trial), ClaimLine.objects.get(claim=claim, trial=later)
    assert (first.patients_claimed, second.patients_claimed) == (fits - 1, 0)
    assert second.explanation[-1]["patients"] == 2
