"""No patient is claimed twice under a program: later claims (same year or later) take only what counting claims
left, a rejected or discarded claim releases its patients, and two hospitals' offices racing to open a claim get
exactly one."""

import datetime
import threading
from decimal import Decimal

import pytest
from django.db import connection

from cgtclinic.errors import DomainError
from cgtclinic.models import PolicyParameter
from subsidies import services
from subsidies.models import Claim, ClaimLine
from tests.factories.subsidies import completed_gene_trial, fixed_program
from trials import enrolment

C = Claim.Status
L = ClaimLine.Status
YEAR = 2025
FIXED_AMOUNT = Decimal("200000.00")  # what the regulator sets for the fixed-amount program in these tests


def value(code: str, region) -> Decimal:
    return PolicyParameter.objects.get(code=code, region=region).value


@pytest.fixture
def rate(program, region):
    return value("subsidy_per_patient_rmb", region)


@pytest.fixture
def trial(research_office):
    return completed_gene_trial(research_office.institution, enrolled=5, actor=research_office)


def enrol_more(trial, actor, count, on=datetime.date(2024, 6, 3)):
    enrolment.enrolment_report(site=trial.sites.get(), actor=actor, kind="enrolled", occurred_on=on, count=count)


def through(claim, office, regulator, decision=services.APPROVE, **decide):
    """Submit, review and decide a draft."""
    services.claim_submit(claim=claim, actor=office)
    services.claim_start_review(claim=claim, actor=regulator)
    return services.claim_decide(claim=claim, actor=regulator, decision=decision, **decide)


def line_of(claim, trial) -> ClaimLine:
    return ClaimLine.objects.get(claim=claim, trial=trial)


@pytest.mark.parametrize("second_year", [YEAR, YEAR + 1])
def test_a_later_claim_takes_only_patients_enrolled_since(
    second_year, research_office, regulator_user, program, trial, rate
):
    first = services.claim_open(actor=research_office, program=program, year=YEAR)
    through(first, research_office, regulator_user)
    enrol_more(trial, research_office, 3)

    second = services.claim_open(actor=research_office, program=program, year=second_year)
    line = line_of(second, trial)
    assert (line.enrolled_total, line.previously_claimed, line.patients_claimed) == (8, 5, 3)
    assert line.previously_awarded == rate * 5
    assert line.amount_computed == rate * 3
    # The two claims together never count a patient twice.
    assert line_of(first, trial).patients_claimed + line.patients_claimed == line.enrolled_total


def test_a_later_claim_with_nothing_new_has_nothing_to_claim(research_office, regulator_user, program, trial):
    through(services.claim_open(actor=research_office, program=program, year=YEAR), research_office, regulator_user)
    second = services.claim_open(actor=research_office, program=program, year=YEAR + 1)
    line = line_of(second, trial)
    assert (line.status, line.patients_claimed, line.amount_computed) == (L.INELIGIBLE, 0, 0)
    assert [reason["rule"] for reason in line.ineligible_reasons] == ["nothing_to_claim"]
    with pytest.raises(DomainError) as caught:
        services.claim_submit(claim=second, actor=research_office)
    assert caught.value.code == "claim_empty"


def test_the_project_cap_counts_what_earlier_claims_were_awarded(
    research_office, regulator_user, program, region, trial, rate
):
    cap = value("subsidy_project_cap_rmb", region)
    through(services.claim_open(actor=research_office, program=program, year=YEAR), research_office, regulator_user)
    enrol_more(trial, research_office, int(cap // rate))  # more than the cap leaves room for
    line = line_of(services.claim_open(actor=research_office, program=program, year=YEAR + 1), trial)
    assert line.amount_computed == cap - rate * 5
    assert line.explanation[-1]["code"] == "project_cap"


def test_a_partial_approval_counts_what_was_approved(research_office, regulator_user, program, region, trial, rate):
    cap = value("subsidy_project_cap_rmb", region)
    first = services.claim_open(actor=research_office, program=program, year=YEAR)
    line = first.lines.get()
    through(
        first,
        research_office,
        regulator_user,
        decision=services.PARTIAL,
        adjustments={str(line.pk): {"amount": str(rate * 2), "reason": "Three patients not evaluable"}},
    )
    enrol_more(trial, research_office, int(cap // rate))
    later = line_of(services.claim_open(actor=research_office, program=program, year=YEAR + 1), trial)
    # The patients stay claimed; the room under the project cap is what was not approved.
    assert (later.previously_claimed, later.previously_awarded) == (5, rate * 2)
    assert later.amount_computed == cap - rate * 2


def test_a_rejected_claim_releases_its_patients(research_office, regulator_user, program, trial, rate):
    first = services.claim_open(actor=research_office, program=program, year=YEAR)
    through(first, research_office, regulator_user, decision=services.REJECT, note="Documents incomplete")
    second = services.claim_open(actor=research_office, program=program, year=YEAR)
    line = line_of(second, trial)
    assert (line.previously_claimed, line.patients_claimed, line.amount_computed) == (0, 5, rate * 5)


def test_a_discarded_draft_never_claimed_anything(research_office, program, trial, rate):
    services.claim_discard(
        claim=services.claim_open(actor=research_office, program=program, year=YEAR), actor=research_office
    )
    line = line_of(services.claim_open(actor=research_office, program=program, year=YEAR), trial)
    assert (line.previously_claimed, line.patients_claimed) == (0, 5)


def test_an_excluded_lines_patients_stay_unclaimed_for_a_later_claim(
    research_office, regulator_user, program, trial, rate
):
    other = completed_gene_trial(research_office.institution, enrolled=2, actor=research_office)
    first = services.claim_open(actor=research_office, program=program, year=YEAR)
    services.line_exclude(line=line_of(first, trial), actor=research_office, reason="Final report not yet accepted")
    through(first, research_office, regulator_user)
    second = services.claim_open(actor=research_office, program=program, year=YEAR + 1)
    assert (line_of(second, trial).patients_claimed, line_of(second, trial).amount_computed) == (5, rate * 5)
    assert line_of(second, other).status == L.INELIGIBLE


def test_no_second_claim_while_one_is_open(research_office, regulator_user, program, trial):
    claim = services.claim_open(actor=research_office, program=program, year=YEAR)
    for step in (
        lambda: None,
        lambda: services.claim_submit(claim=claim, actor=research_office),
        lambda: services.claim_start_review(claim=claim, actor=regulator_user),
    ):
        step()
        with pytest.raises(DomainError) as caught:
            services.claim_open(actor=research_office, program=program, year=YEAR + 1)
        assert caught.value.code == "claim_open_exists"
    services.claim_decide(claim=claim, actor=regulator_user, decision=services.APPROVE)
    assert services.claim_open(actor=research_office, program=program, year=YEAR + 1).status == C.DRAFT


def test_the_yearly_cap_counts_earlier_claims_of_the_same_year_only(
    research_office, regulator_user, program, region, trial, rate
):
    PolicyParameter.objects.filter(code="subsidy_institution_year_cap_rmb", region=region).update(value=rate * 7)
    through(services.claim_open(actor=research_office, program=program, year=YEAR), research_office, regulator_user)
    second_trial = completed_gene_trial(research_office.institution, enrolled=4, actor=research_office)

    same_year = services.claim_open(actor=research_office, program=program, year=YEAR)
    line = line_of(same_year, second_trial)
    assert line.amount_computed == rate * 2
    assert line.explanation[-2]["already"] == str((rate * 5).quantize(Decimal("0.01")))
    services.claim_discard(claim=same_year, actor=research_office)

    next_year = services.claim_open(actor=research_office, program=program, year=YEAR + 1)
    assert line_of(next_year, second_trial).amount_computed == rate * 4


def test_a_fixed_amount_project_is_claimed_once_even_if_approved_at_nothing(
    research_office, regulator_user, region, trial
):
    program = fixed_program(region)
    services.program_set_fixed_amount(program=program, actor=regulator_user, amount=str(FIXED_AMOUNT))
    other = completed_gene_trial(research_office.institution, enrolled=1, actor=research_office)
    first = services.claim_open(actor=research_office, program=program, year=YEAR)
    through(
        first,
        research_office,
        regulator_user,
        decision=services.PARTIAL,
        adjustments={str(line_of(first, trial).pk): {"amount": "0", "reason": "Not selected"}},
    )
    second = services.claim_open(actor=research_office, program=program, year=YEAR + 1)
    for claimed in (trial, other):
        line = line_of(second, claimed)
        assert [reason["rule"] for reason in line.ineligible_reasons] == ["already_claimed"]


def test_a_fixed_amount_project_of_a_rejected_claim_can_be_claimed_again(
    research_office, regulator_user, region, trial
):
    program = fixed_program(region)
    services.program_set_fixed_amount(program=program, actor=regulator_user, amount=str(FIXED_AMOUNT))
    through(
        services.claim_open(actor=research_office, program=program, year=YEAR),
        research_office,
        regulator_user,
        decision=services.REJECT,
        note="Sponsor not registered locally at the time",
    )
    line = line_of(services.claim_open(actor=research_office, program=program, year=YEAR + 1), trial)
    assert (line.status, line.amount_computed) == (L.ELIGIBLE, FIXED_AMOUNT)


@pytest.mark.django_db(transaction=True)
def test_two_offices_opening_at_once_get_exactly_one_claim(research_office, program, trial):
    """Two requests for the same hospital and program race: the partial unique index lets one through."""
    barrier = threading.Barrier(2)
    outcomes = []

    def open_claim():
        try:
            barrier.wait(timeout=10)
            outcomes.append(services.claim_open(actor=research_office, program=program, year=YEAR))
        except DomainError as exc:
            outcomes.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=open_claim) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    claims = [o for o in outcomes if isinstance(o, Claim)]
    errors = [o for o in outcomes if isinstance(o, DomainError)]
    assert len(claims) == 1 and len(errors) == 1, outcomes
    assert errors[0].code == "claim_open_exists"
    assert Claim.objects.count() == 1
    assert ClaimLine.objects.get().patients_claimed == 5
