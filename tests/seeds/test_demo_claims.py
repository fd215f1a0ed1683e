"""The demo claims, and the issue's “done when” on the demo data: 瑞康医院's research office opens this year's
Shanghai claim, sees the right lines and amounts with the caps applied, submits it, and the Shanghai regulator
approves it. Expected numbers come from the seed files and the policy values, never from literals."""

import datetime
from decimal import Decimal

import pytest
import yaml
from django.db import transaction
from django.utils import timezone

from cgtclinic.errors import DomainError
from cgtclinic.models import PolicyParameter, User
from cgtclinic.seeding import SEEDS_DIR, SeedError, load_seeds
from subsidies import rules, services
from subsidies.models import Claim, ClaimLine, ClaimStatusChange, EligibilityRule, SubsidyProgram
from subsidies.seeds import load_demo
from tests.seeds.files import read_rows
from tests.seeds.test_demo_enrolment import demo_seeds, net_counts
from trials.models import EnrolmentEntry

pytestmark = pytest.mark.django_db

DEMO = SEEDS_DIR / "demo"
C = Claim.Status
L = ClaimLine.Status
Kind = EligibilityRule.Kind
HOSPITAL = "sh-ruikang"
PER_PATIENT = "shanghai-gene-therapy-per-patient"
INSURANCE = "shanghai-trial-liability-insurance"
# What 瑞康医院's claim lists, by the demo's design: two completed gene-therapy projects, a CAR-T trial and an
# active gene therapy (the rules each fails).
ELIGIBLE = {"RK-GT-2023-01", "RK-IIT-2024-03"}
INELIGIBLE = {
    # A CAR-T trial is gene-modified cell therapy, which the Shanghai program counts; it is not completed yet.
    "RK-CART-2025-01": {Kind.RESEARCH_COMPLETED},
    "ZJ-LV-2025-02": {Kind.RESEARCH_COMPLETED},
}


@pytest.fixture
def demo_report(demo_loaded_once, db):
    """Every test here reads the demo set, so it is loaded once for the module."""
    return demo_loaded_once


@pytest.fixture
def office(demo_report):
    return User.objects.get(username="research_office")


@pytest.fixture
def regulator(demo_report):
    return User.objects.get(username="regulator")


@pytest.fixture
def program(demo_report):
    return SubsidyProgram.objects.get(code=PER_PATIENT)


def _value(code: str) -> Decimal:
    return PolicyParameter.value_for(code, region=SubsidyProgram.objects.get(code=PER_PATIENT).region)


def _claim_row(program_code: str) -> dict:
    return next(row for row in read_rows(DEMO / "claims.yaml") if row["program"] == program_code)


def _step_date(row: dict, verb: str) -> datetime.date:
    return next(step["date"] for step in row["steps"] if step["do"] == verb)


def _enrolled(protocol_number: str, *, reported_by=None) -> int:
    """Net subjects the hospital's site of the trial enrolled, from enrolment.yaml."""
    row = next(
        row for row in read_rows(DEMO / "enrolment.yaml") if row["trial"] == protocol_number and row["site"] == HOSPITAL
    )
    return net_counts(row["events"], reported_by=reported_by)["enrolled"]


def test_the_demo_claims_are_loaded_and_none_is_left_open(demo_report):
    rows = read_rows(DEMO / "claims.yaml")

    assert Claim.objects.count() == len(rows) == demo_report.tally(Claim).created
    assert not Claim.objects.filter(status__in=Claim.OPEN_STATUSES).exists(), "the demo user opens the next claim"
    assert not Claim.objects.filter(year__gte=timezone.localdate().year).exists()


def test_the_earlier_claim_was_paid_for_the_subjects_reported_by_its_submission(demo_report):
    row = _claim_row(PER_PATIENT)
    claim = Claim.objects.get(program__code=PER_PATIENT, year=row["year"])
    rate, cap = _value("subsidy_per_patient_rmb"), _value("subsidy_project_cap_rmb")
    reported = _enrolled("RK-GT-2023-01", reported_by=_step_date(row, "submit"))
    expected = min(rate * reported, cap)

    line = claim.lines.get(trial__protocol_number="RK-GT-2023-01")
    # Paid in part: the first instalment of the demo row, the rest still owed.
    paid = Decimal(str(next(step["amount"] for step in row["steps"] if step["do"] == "pay")))
    assert claim.status == C.PARTIALLY_PAID
    assert (line.status, line.enrolled_total, line.patients_claimed) == (L.ELIGIBLE, reported, reported)
    assert reported < _enrolled("RK-GT-2023-01"), "some subjects were reported after the claim"
    assert claim.amount_claimed == claim.amount_approved == line.amount_computed == expected
    assert (claim.amount_paid, claim.balance) == (paid, expected - paid)
    assert claim.paid_on == _step_date(row, "pay")
    frozen = next(item for item in claim.snapshot["lines"] if item["protocol_number"] == "RK-GT-2023-01")
    assert frozen["patients_claimed"] == reported
    assert list(claim.status_changes.values_list("to_status", flat=True)) == [
        C.SUBMITTED,
        C.UNDER_REVIEW,
        C.APPROVED,
        C.PARTIALLY_PAID,
    ]
    assert {change.actor.username for change in ClaimStatusChange.objects.filter(claim=claim)} == {
        "research_office",
        "regulator",
    }


def test_the_insurance_claim_paid_its_share_of_the_premium(demo_report):
    row = _claim_row(INSURANCE)
    [item] = [step for step in row["steps"] if step["do"] == "cost_item"]
    claim = Claim.objects.get(program__code=INSURANCE)
    percent = PolicyParameter.value_for("insurance_premium_subsidy_percent", region=claim.program.region)
    item_cap = PolicyParameter.value_for("insurance_premium_subsidy_cap_rmb", region=claim.program.region)

    line = claim.lines.get()
    assert (line.item_reference, line.cost_rmb) == (item["policy_number"], Decimal(str(item["cost"])))
    # Paid in two instalments; the second, of the balance, closed the claim.
    assert claim.status == C.PAID
    assert claim.amount_paid == line.amount_computed == rules.to_fen(min(line.cost_rmb * percent / 100, item_cap))
    assert [payment.balance_after for payment in claim.payments.all()][-1] == 0
    assert claim.payments.count() == len([step for step in row["steps"] if step["do"] == "pay"]) == 2


def test_done_when_the_office_claims_this_year_and_the_regulator_approves(demo_report, office, regulator, program):
    rate = _value("subsidy_per_patient_rmb")
    project_cap = _value("subsidy_project_cap_rmb")
    year_cap = _value("subsidy_institution_year_cap_rmb")
    earlier = _claim_row(PER_PATIENT)
    claimed_before = _enrolled("RK-GT-2023-01", reported_by=_step_date(earlier, "submit"))
    awarded_before = min(rate * claimed_before, project_cap)
    enrolled = {protocol: _enrolled(protocol) for protocol in ELIGIBLE}
    late = enrolled["RK-GT-2023-01"] - claimed_before
    expected = {
        "RK-GT-2023-01": min(rate * late, project_cap - awarded_before),
        "RK-IIT-2024-03": min(rate * enrolled["RK-IIT-2024-03"], project_cap),
    }
    assert expected["RK-GT-2023-01"] < rate * late, "the demo is built so that the project cap cuts this line"
    assert sum(expected.values()) < year_cap

    claim = services.claim_open(actor=office, program=program, year=timezone.localdate().year)

    lines = {line.trial.protocol_number: line for line in claim.lines.select_related("trial")}
    assert set(lines) == ELIGIBLE | set(INELIGIBLE)
    for protocol, failed in INELIGIBLE.items():
        assert lines[protocol].status == L.INELIGIBLE
        assert {reason["rule"] for reason in lines[protocol].ineligible_reasons} == failed, protocol
        assert lines[protocol].amount_computed == 0
    gene = lines["RK-GT-2023-01"]
    assert gene.status == L.ELIGIBLE
    assert (gene.enrolled_total, gene.previously_claimed, gene.patients_claimed) == (
        enrolled["RK-GT-2023-01"],
        claimed_before,
        late,
    )
    assert gene.previously_awarded == awarded_before
    assert [step["code"] for step in gene.explanation] == ["per_patient", "project_cap"]
    assert str(claimed_before) in rules.describe(gene.explanation)
    iit = lines["RK-IIT-2024-03"]
    assert (iit.status, iit.previously_claimed, iit.patients_claimed) == (L.ELIGIBLE, 0, enrolled["RK-IIT-2024-03"])
    assert [step["code"] for step in iit.explanation] == ["per_patient"]
    assert {protocol: lines[protocol].amount_computed for protocol in ELIGIBLE} == expected
    assert claim.amount_claimed == sum(expected.values())
    # No subject is paid twice: this claim and the earlier one together take each enrolled subject once.
    assert claimed_before + gene.patients_claimed == enrolled["RK-GT-2023-01"]

    claim = services.claim_submit(claim=claim, actor=office)
    assert claim.status == C.SUBMITTED
    claim = services.claim_start_review(claim=claim, actor=regulator)
    assert claim.status == C.UNDER_REVIEW
    claim = services.claim_decide(claim=claim, actor=regulator, decision=services.APPROVE, note="同意资助。")

    claim.refresh_from_db()
    assert claim.status == C.APPROVED
    assert claim.amount_approved == claim.amount_claimed == sum(expected.values())
    assert Claim.objects.visible_to(regulator).filter(pk=claim.pk).exists()


def test_only_the_hospitals_research_office_opens_its_claim(demo_report, program):
    for username in ("pi", "ethics_office", "regulator", "shencheng_ro"):
        with pytest.raises(DomainError) as refused:
            services.claim_open(
                actor=User.objects.get(username=username),
                program=program,
                year=timezone.localdate().year,
                institution=User.objects.get(username="research_office").institution,
            )
        assert refused.value.code == "permission_denied", username


def test_only_a_regulator_of_shanghai_reviews_the_claim(demo_report, office, regulator, program):
    claim = services.claim_open(actor=office, program=program, year=timezone.localdate().year)
    claim = services.claim_submit(claim=claim, actor=office)

    for username in ("beijing_regulator", "research_office"):
        with pytest.raises(DomainError) as refused:
            services.claim_start_review(claim=claim, actor=User.objects.get(username=username))
        assert refused.value.code == "permission_denied", username
    assert not Claim.objects.visible_to(User.objects.get(username="beijing_regulator")).filter(pk=claim.pk).exists()
    with pytest.raises(DomainError, match="start the review first"):
        services.claim_decide(claim=claim, actor=regulator, decision=services.APPROVE)


def test_a_second_open_claim_under_the_program_is_refused(demo_report, office, program):
    services.claim_open(actor=office, program=program, year=timezone.localdate().year)

    with pytest.raises(DomainError) as refused, transaction.atomic():
        services.claim_open(actor=office, program=program, year=timezone.localdate().year)

    assert refused.value.code == "claim_open_exists"


def test_loading_again_leaves_the_claims_as_they_are(demo_report):
    changes = ClaimStatusChange.objects.count()

    again = load_seeds(SEEDS_DIR, demo=True)

    tally = again.tally(Claim)
    assert (tally.created, tally.updated, tally.unchanged) == (0, 0, Claim.objects.count())
    assert ClaimStatusChange.objects.count() == changes


# --- Bad rows ---------------------------------------------------------------------------------------------


def _claim(*steps, program=PER_PATIENT, date="2025-10-13", by="research_office", year=2025):
    return {"institution": HOSPITAL, "program": program, "year": year, "by": by, "date": date, "steps": list(steps)}


BAD_ROWS = {
    "opened_by_the_regulator": (_claim(by="regulator"), "Only the hospital's research office"),
    "an_unknown_program": (_claim(program="shanghai-free-lunch"), "“program”: “shanghai-free-lunch”"),
    "a_year_not_begun": (_claim(year=2099), "has not begun"),
    "paid_before_the_decision": (
        _claim(
            {"do": "submit", "date": "2025-10-14", "by": "research_office"},
            {"do": "pay", "date": "2025-10-20", "by": "regulator"},
        ),
        "step 2): A claim that is “Submitted” cannot be paid",
    ),
    "approved_by_the_office": (
        _claim(
            {"do": "submit", "date": "2025-10-14", "by": "research_office"},
            {"do": "start_review", "date": "2025-10-15", "by": "research_office"},
        ),
        "step 2): Only a regulator of the program's region",
    ),
    "excluding_a_trial_not_on_the_claim": (
        _claim(
            {"do": "exclude", "date": "2025-10-14", "by": "research_office", "trial": "SHH-GE-2024-02", "reason": "x"}
        ),
        "step 1): The claim has no line for the trial “SHH-GE-2024-02”",
    ),
    "a_step_dated_before_the_previous": (
        _claim({"do": "submit", "date": "2025-10-01", "by": "research_office"}),
        "step 1): The step is dated before the previous one",
    ),
    "an_unknown_step": (
        _claim({"do": "appeal", "date": "2025-10-14", "by": "research_office"}),
        "Unknown step “appeal”",
    ),
}


@pytest.mark.parametrize("case", list(BAD_ROWS))
def test_a_bad_claim_row_names_file_row_and_step_and_writes_nothing(demo_report, tmp_path, case):
    row, expected = BAD_ROWS[case]
    (tmp_path / "claims.yaml").write_text(yaml.safe_dump([row], allow_unicode=True), encoding="utf-8")
    (tmp_path / "enrolment.yaml").write_text((DEMO / "enrolment.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    claims, entries = Claim.objects.count(), EnrolmentEntry.objects.count()

    with pytest.raises(SeedError) as caught, transaction.atomic():
        load_demo(demo_seeds(tmp_path))

    message = str(caught.value)
    assert "claims.yaml, row 1" in message
    assert expected in message
    assert (Claim.objects.count(), EnrolmentEntry.objects.count()) == (claims, entries)
