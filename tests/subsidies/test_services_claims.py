"""The claim workflow through subsidies.services: open, compute with every cap, exclude and include, recompute,
submit (frozen), review, decide, pay; fixed amounts and cost items; and who may take each step."""

import datetime
from decimal import Decimal

import pytest
from django.utils import timezone, translation

from cgtclinic.errors import DomainError, TransitionNotAllowed
from cgtclinic.models import PolicyParameter
from cgtclinic.roles import Role
from subsidies import rules, services
from subsidies.models import Claim, ClaimLine, ClaimStatusChange, SubsidyProgram
from tests.factories.cgtclinic import InstitutionFactory, RegionFactory, UserFactory
from tests.factories.subsidies import (
    CLAIM_YEAR,
    completed_gene_trial,
    fixed_program,
    insurance_program,
    policy_value,
    shanghai_program,
)
from tests.factories.trials import DocumentVersionFactory
from trials import enrolment
from trials.models import Trial, TrialSite

C = Claim.Status
L = ClaimLine.Status
YEAR = 2025
# What a regulator might set for a fixed-amount program (Beijing's text names no amount).
FIXED_AMOUNT = Decimal("200000.00")


def value(code: str, region) -> Decimal:
    return PolicyParameter.objects.get(code=code, region=region).value


def fen(amount: Decimal) -> str:
    """Money as the services store it in snapshots and explanations: a string to the fen."""
    return str(rules.to_fen(amount))


def set_value(code: str, region, new: Decimal) -> None:
    PolicyParameter.objects.filter(code=code, region=region).update(value=new)


def enrol_more(trial, actor, count, on=datetime.date(2024, 6, 3)):
    return enrolment.enrolment_report(site=trial.sites.get(), actor=actor, kind="enrolled", occurred_on=on, count=count)


@pytest.fixture
def rate(program, region):
    return value("subsidy_per_patient_rmb", region)


@pytest.fixture
def gene_trial(research_office):
    return completed_gene_trial(research_office.institution, enrolled=5, actor=research_office)


@pytest.fixture
def draft(research_office, program, gene_trial):
    return services.claim_open(actor=research_office, program=program, year=YEAR)


@pytest.fixture
def submitted(draft, research_office):
    return services.claim_submit(claim=draft, actor=research_office)


@pytest.fixture
def under_review(submitted, regulator_user):
    return services.claim_start_review(claim=submitted, actor=regulator_user)


@pytest.fixture
def approved(under_review, regulator_user):
    return services.claim_decide(claim=under_review, actor=regulator_user, decision=services.APPROVE)


def assert_refused(code: str, call, *args, **kwargs) -> DomainError:
    with pytest.raises(DomainError) as caught, translation.override("en"):
        call(*args, **kwargs)
    assert caught.value.code == code, caught.value.message
    return caught.value


# Opening ----------------------------------------------------------------------------------------------------


def test_open_proposes_the_lines_from_the_ledger(research_office, program, gene_trial, rate):
    claim = services.claim_open(actor=research_office, program=program, year=YEAR)
    assert (claim.status, claim.institution, claim.opened_by) == (C.DRAFT, research_office.institution, research_office)
    assert claim.reference_date == datetime.date(YEAR, 12, 31)
    line = claim.lines.get()
    assert (line.trial, line.status, line.patients_claimed, line.amount_computed) == (
        gene_trial,
        L.ELIGIBLE,
        5,
        rate * 5,
    )
    assert line.explanation[0]["code"] == "per_patient"
    assert claim.amount_claimed == rate * 5
    assert claim.reference == f"{YEAR}-{claim.pk:05d}"


def test_open_for_the_running_year_reads_as_of_today(research_office, program, gene_trial):
    today = timezone.localdate()
    claim = services.claim_open(actor=research_office, program=program, year=today.year)
    assert claim.reference_date == today


def test_open_counts_only_enrolment_up_to_the_reference_date(research_office, program, region):
    trial = completed_gene_trial(
        research_office.institution, enrolled=2, actor=research_office, completed_on=datetime.date(2024, 12, 30)
    )
    claim = services.claim_open(actor=research_office, program=program, year=2024)
    assert claim.lines.get(trial=trial).enrolled_total == 2


def test_open_refuses_a_program_of_another_region(research_office, gene_trial):
    elsewhere = shanghai_program(RegionFactory(code="elsewhere"))
    error = assert_refused("invalid", services.claim_open, actor=research_office, program=elsewhere, year=YEAR)
    assert error.field == "program"
    assert not Claim.objects.exists()


@pytest.mark.parametrize("offset", [-1, 1])
def test_open_refuses_a_year_the_program_does_not_cover(offset, research_office, region):
    program = shanghai_program(region, year_from=2024, year_to=2024)
    year = (program.year_from - 1) if offset < 0 else (program.year_to + 1)
    error = assert_refused("invalid", services.claim_open, actor=research_office, program=program, year=year)
    assert error.field == "year"


def test_open_refuses_a_year_that_has_not_begun(research_office, program):
    year = timezone.localdate().year + 1
    error = assert_refused("invalid", services.claim_open, actor=research_office, program=program, year=year)
    assert error.field == "year"


def test_open_refuses_a_year_whose_policy_values_were_not_in_force(research_office, region):
    program = shanghai_program(region, year_from=2022)
    assert_refused("policy_value_missing", services.claim_open, actor=research_office, program=program, year=2022)
    assert not Claim.objects.exists()


def test_a_second_open_claim_is_refused(draft, research_office, program):
    assert_refused("claim_open_exists", services.claim_open, actor=research_office, program=program, year=YEAR - 1)
    assert Claim.objects.count() == 1


def test_a_system_administrator_opens_for_a_named_hospital(system_admin, program, research_office, gene_trial):
    assert_refused("invalid", services.claim_open, actor=system_admin, program=program, year=YEAR)
    claim = services.claim_open(actor=system_admin, program=program, year=YEAR, institution=research_office.institution)
    assert claim.institution == research_office.institution


@pytest.mark.parametrize("role", [Role.ETHICS_OFFICE, Role.PI])
def test_only_the_research_office_opens_a_claim(role, institution, program):
    actor = UserFactory(role=role, institution=institution)
    assert_refused("permission_denied", services.claim_open, actor=actor, program=program, year=YEAR)


def test_a_regulator_or_another_hospital_cannot_open_for_a_hospital(regulator_user, program, institution, region):
    for actor in (
        regulator_user,
        UserFactory(role=Role.RESEARCH_OFFICE, institution=InstitutionFactory(region=region)),
    ):
        assert_refused(
            "permission_denied", services.claim_open, actor=actor, program=program, year=YEAR, institution=institution
        )
    assert not Claim.objects.exists()


def test_an_inactive_research_office_account_cannot_open(research_office, program):
    research_office.is_active = False
    assert_refused("permission_denied", services.claim_open, actor=research_office, program=program, year=YEAR)


# Caps through the service -------------------------------------------------------------------------------------


def test_the_project_cap_bites(research_office, program, region, rate):
    cap = value("subsidy_project_cap_rmb", region)
    big = completed_gene_trial(research_office.institution, enrolled=int(cap // rate) + 3, actor=research_office)
    line = services.claim_open(actor=research_office, program=program, year=YEAR).lines.get(trial=big)
    assert line.amount_computed == cap
    assert [step["code"] for step in line.explanation] == ["per_patient", "project_cap"]
    assert Decimal(line.explanation[-1]["cut"]) == rate * (int(cap // rate) + 3) - cap


def test_the_yearly_cap_cuts_the_research_completed_last(research_office, program, region, rate):
    set_value("subsidy_institution_year_cap_rmb", region, rate * 7)
    earlier = completed_gene_trial(
        research_office.institution, enrolled=5, actor=research_office, completed_on=datetime.date(2025, 3, 1)
    )
    later = completed_gene_trial(
        research_office.institution, enrolled=5, actor=research_office, completed_on=datetime.date(2025, 9, 1)
    )
    claim = services.claim_open(actor=research_office, program=program, year=YEAR)
    assert claim.lines.get(trial=earlier).amount_computed == rate * 5
    cut = claim.lines.get(trial=later)
    assert (cut.amount_computed, cut.explanation[-2]["code"]) == (rate * 2, "institution_year_cap")
    assert Decimal(cut.explanation[-2]["in_this_claim"]) == rate * 5
    # Only the two patients paid for are claimed; the other three stay for next year.
    assert (cut.patients_claimed, cut.explanation[-1]["code"], cut.explanation[-1]["patients"]) == (
        2,
        "patients_deferred",
        3,
    )
    assert claim.amount_claimed == rate * 7


def test_the_insurance_premium_share_is_capped_per_policy(research_office, region, gene_trial):
    program = insurance_program(region)
    percent = value("insurance_premium_subsidy_percent", region)
    cap = value("insurance_premium_subsidy_cap_rmb", region)
    claim = services.claim_open(actor=research_office, program=program, year=YEAR)
    assert not claim.lines.exists()  # cost items are entered, not proposed
    small_cost = (cap * 100 / percent / 2).quantize(Decimal("0.01"))
    big_cost = cap * 100 / percent * 3
    small = services.cost_item_add(
        claim=claim, actor=research_office, trial=gene_trial, item_reference="PICC-2025-001", cost_rmb=small_cost
    )
    big = services.cost_item_add(
        claim=claim, actor=research_office, trial=gene_trial, item_reference="PICC-2025-002", cost_rmb=big_cost
    )
    small.refresh_from_db()
    big.refresh_from_db()
    assert small.amount_computed == (small_cost * percent / 100).quantize(Decimal("0.01"))
    assert (big.amount_computed, big.explanation[-1]["code"]) == (cap, "item_cap")
    claim.refresh_from_db()
    assert claim.amount_claimed == small.amount_computed + cap


@pytest.mark.parametrize(
    ("reference", "cost", "field"),
    [
        ("", "1000.00", "item_reference"),
        ("P-1", "0", "cost_rmb"),
        ("P-1", "-5", "cost_rmb"),
        ("P-1", "1.234", "cost_rmb"),
    ],
)
def test_a_cost_item_needs_a_policy_number_and_a_positive_cost(
    reference, cost, field, research_office, region, gene_trial
):
    claim = services.claim_open(actor=research_office, program=insurance_program(region), year=YEAR)
    error = assert_refused(
        "invalid",
        services.cost_item_add,
        claim=claim,
        actor=research_office,
        trial=gene_trial,
        item_reference=reference,
        cost_rmb=cost,
    )
    assert error.field == field


def test_a_policy_is_claimed_once(research_office, region, gene_trial, regulator_user):
    program = insurance_program(region)
    claim = services.claim_open(actor=research_office, program=program, year=YEAR)
    add = {"actor": research_office, "trial": gene_trial, "item_reference": "P-1", "cost_rmb": "1000.00"}
    services.cost_item_add(claim=claim, **add)
    assert_refused("invalid", services.cost_item_add, claim=claim, **add)
    services.claim_submit(claim=claim, actor=research_office)
    services.claim_start_review(claim=claim, actor=regulator_user)
    services.claim_decide(claim=claim, actor=regulator_user, decision=services.APPROVE)
    later = services.claim_open(actor=research_office, program=program, year=YEAR)
    error = assert_refused("invalid", services.cost_item_add, claim=later, **add)
    assert error.field == "item_reference"


def test_cost_items_only_on_a_percentage_programs_draft_for_the_hospitals_trials(
    research_office, region, gene_trial, draft
):
    add = {"actor": research_office, "trial": gene_trial, "item_reference": "P-1", "cost_rmb": "1000.00"}
    assert_refused("invalid", services.cost_item_add, claim=draft, **add)  # a per-patient program
    claim = services.claim_open(actor=research_office, program=insurance_program(region), year=YEAR)
    other = completed_gene_trial(InstitutionFactory(region=region), enrolled=0, actor=research_office)
    error = assert_refused("invalid", services.cost_item_add, claim=claim, **{**add, "trial": other})
    assert error.field == "trial"
    services.cost_item_add(claim=claim, **add)
    services.claim_submit(claim=claim, actor=research_office)
    assert_refused("transition_not_allowed", services.cost_item_add, claim=claim, **{**add, "item_reference": "P-2"})


# Excluding and including --------------------------------------------------------------------------------------


def test_exclude_leaves_the_line_out_and_include_takes_it_back(draft, research_office, rate):
    line = draft.lines.get()
    excluded = services.line_exclude(line=line, actor=research_office, reason="  Audit pending  ")
    draft.refresh_from_db()
    assert (excluded.status, excluded.excluded_reason, excluded.excluded_by) == (
        L.EXCLUDED,
        "Audit pending",
        research_office,
    )
    excluded.refresh_from_db()
    assert (excluded.patients_claimed, excluded.amount_computed, draft.amount_claimed) == (0, 0, 0)
    # Recomputing keeps the exclusion.
    services.claim_recompute(claim=draft, actor=research_office)
    assert draft.lines.get().status == L.EXCLUDED
    included = services.line_include(line=line, actor=research_office)
    included.refresh_from_db()
    draft.refresh_from_db()
    assert (included.status, included.excluded_reason, included.excluded_by) == (L.ELIGIBLE, "", None)
    assert (included.amount_computed, draft.amount_claimed) == (rate * 5, rate * 5)


def test_an_included_line_is_checked_again(draft, research_office):
    line = draft.lines.get()
    services.line_exclude(line=line, actor=research_office, reason="Protocol deviation under review")
    TrialSite.objects.filter(pk=line.site_id).update(ethics_approved_on=None)
    services.line_include(line=line, actor=research_office)
    assert ClaimLine.objects.get(pk=line.pk).status == L.INELIGIBLE


def test_exclude_needs_a_reason_and_a_line_not_already_excluded(draft, research_office):
    line = draft.lines.get()
    error = assert_refused("invalid", services.line_exclude, line=line, actor=research_office, reason="  ")
    assert error.field == "reason"
    services.line_exclude(line=line, actor=research_office, reason="Duplicate")
    assert_refused("invalid", services.line_exclude, line=line, actor=research_office, reason="Again")


def test_include_refuses_a_line_that_is_not_excluded(draft, research_office):
    assert_refused("invalid", services.line_include, line=draft.lines.get(), actor=research_office)


def test_lines_are_frozen_once_submitted(submitted, research_office):
    line = submitted.lines.get()
    assert_refused("transition_not_allowed", services.line_exclude, line=line, actor=research_office, reason="Late")
    assert_refused("transition_not_allowed", services.line_include, line=line, actor=research_office)


# Recomputing ------------------------------------------------------------------------------------------------


def test_recompute_reads_new_ledger_entries(draft, research_office, gene_trial, rate):
    enrol_more(gene_trial, research_office, 2)
    assert draft.lines.get().patients_claimed == 5
    claim = services.claim_recompute(claim=draft, actor=research_office)
    assert (claim.lines.get().patients_claimed, claim.amount_claimed) == (7, rate * 7)


def test_recompute_reads_changed_policy_values(draft, research_office, region, rate):
    set_value("subsidy_per_patient_rmb", region, rate / 2)
    claim = services.claim_recompute(claim=draft, actor=research_office)
    assert claim.amount_claimed == (rate / 2) * 5


def test_recompute_drops_a_trial_that_was_withdrawn_from_the_list(draft, research_office, gene_trial):
    Trial.objects.filter(pk=gene_trial.pk).update(status=Trial.Status.WITHDRAWN)
    claim = services.claim_recompute(claim=draft, actor=research_office)
    assert not claim.lines.exists()


def test_recompute_refuses_a_submitted_claim(submitted, research_office):
    assert_refused("transition_not_allowed", services.claim_recompute, claim=submitted, actor=research_office)


# Submitting -------------------------------------------------------------------------------------------------


def test_submit_freezes_counts_amounts_evidence_and_documents(draft, research_office, gene_trial, rate):
    document = DocumentVersionFactory(document__trial=gene_trial, version_label="V2.0")
    claim = services.claim_submit(claim=draft, actor=research_office)
    assert (claim.status, claim.submitted_by) == (C.SUBMITTED, research_office)
    snapshot = claim.snapshot
    assert snapshot["amount_claimed"] == fen(rate * 5)
    assert snapshot["reference_date"] == f"{YEAR}-12-31"
    assert snapshot["rule"]["rate"] == str(rate)
    (line,) = snapshot["lines"]
    assert (line["protocol_number"], line["patients_claimed"], line["amount_computed"]) == (
        gene_trial.protocol_number,
        5,
        fen(rate * 5),
    )
    assert line["evidence"]["completed_on"] == "2025-06-30"
    assert line["documents"] == [
        {
            "kind": document.document.kind,
            "title": document.document.title,
            "version": document.number,
            "version_label": "V2.0",
            "sha256": document.sha256,
        }
    ]
    change = ClaimStatusChange.objects.get(claim=claim)
    assert (change.from_status, change.to_status, change.actor) == (C.DRAFT, C.SUBMITTED, research_office)


def test_ledger_changes_after_submission_do_not_change_the_claim(submitted, research_office, gene_trial, rate):
    frozen = dict(submitted.snapshot)
    enrol_more(gene_trial, research_office, 4)
    submitted.refresh_from_db()
    assert submitted.snapshot == frozen
    assert (submitted.amount_claimed, submitted.lines.get().patients_claimed) == (rate * 5, 5)


def test_submit_recomputes_a_last_time(draft, research_office, gene_trial, rate):
    enrol_more(gene_trial, research_office, 1)
    claim = services.claim_submit(claim=draft, actor=research_office)
    assert claim.amount_claimed == rate * 6


def test_an_empty_claim_is_not_submitted(draft, research_office):
    services.line_exclude(line=draft.lines.get(), actor=research_office, reason="Not this year")
    assert_refused("claim_empty", services.claim_submit, claim=draft, actor=research_office)
    draft.refresh_from_db()
    assert (draft.status, draft.snapshot) == (C.DRAFT, None)


def test_a_claim_with_only_ineligible_lines_is_not_submitted(research_office, program):
    completed_gene_trial(
        research_office.institution,
        enrolled=3,
        actor=research_office,
        therapy_category=Trial.TherapyCategory.STEM_CELL,
    )
    claim = services.claim_open(actor=research_office, program=program, year=YEAR)
    assert_refused("claim_empty", services.claim_submit, claim=claim, actor=research_office)


def test_a_fixed_amount_program_waits_for_the_regulators_amount(research_office, region, gene_trial, regulator_user):
    program = fixed_program(region)
    claim = services.claim_open(actor=research_office, program=program, year=YEAR)
    assert claim.lines.get().explanation == [{"code": "fixed_amount_not_set", "amount": "0.00"}]
    assert_refused("amount_not_set", services.claim_submit, claim=claim, actor=research_office)
    services.program_set_fixed_amount(program=program, actor=regulator_user, amount=str(FIXED_AMOUNT))
    claim = services.claim_submit(claim=claim, actor=research_office)
    assert (claim.status, claim.amount_claimed) == (C.SUBMITTED, FIXED_AMOUNT)
    assert claim.lines.get().explanation == [{"code": "fixed_amount", "amount": str(FIXED_AMOUNT)}]


def test_submit_twice_is_refused(submitted, research_office):
    assert_refused("transition_not_allowed", services.claim_submit, claim=submitted, actor=research_office)


# Review and decision ----------------------------------------------------------------------------------------


def test_start_review(submitted, regulator_user):
    claim = services.claim_start_review(claim=submitted, actor=regulator_user)
    assert claim.status == C.UNDER_REVIEW
    assert_refused("transition_not_allowed", services.claim_start_review, claim=claim, actor=regulator_user)


def test_a_draft_cannot_be_reviewed(draft, regulator_user):
    assert_refused("transition_not_allowed", services.claim_start_review, claim=draft, actor=regulator_user)


def test_approve(under_review, regulator_user, rate):
    claim = services.claim_decide(claim=under_review, actor=regulator_user, decision=services.APPROVE, note=" OK ")
    assert (claim.status, claim.amount_approved, claim.decided_by, claim.decision_note) == (
        C.APPROVED,
        rate * 5,
        regulator_user,
        "OK",
    )
    assert claim.lines.get().approved_amount == rate * 5
    assert claim.status_changes.last().note == "OK"


@pytest.fixture
def two_lines(research_office, program):
    trials = [completed_gene_trial(research_office.institution, enrolled=n, actor=research_office) for n in (4, 2)]
    claim = services.claim_open(actor=research_office, program=program, year=YEAR)
    services.claim_submit(claim=claim, actor=research_office)
    return claim, [claim.lines.get(trial=trial) for trial in trials]


def test_partially_approve_lowers_lines_with_reasons(two_lines, regulator_user, rate):
    claim, (big, small) = two_lines
    services.claim_start_review(claim=claim, actor=regulator_user)
    claim = services.claim_decide(
        claim=claim,
        actor=regulator_user,
        decision=services.PARTIAL,
        note="Selected on merit",
        adjustments={str(big.pk): {"amount": str(rate * 3), "reason": "One patient withdrew before dosing"}},
    )
    big.refresh_from_db()
    small.refresh_from_db()
    assert claim.status == C.PARTIALLY_APPROVED
    assert (big.approved_amount, big.regulator_note) == (rate * 3, "One patient withdrew before dosing")
    assert big.explanation[-1] == {
        "code": "regulator_adjustment",
        "before": fen(rate * 4),
        "amount": fen(rate * 3),
        "reason": "One patient withdrew before dosing",
    }
    assert (small.approved_amount, small.regulator_note) == (rate * 2, "")
    assert claim.amount_approved == rate * 5


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"amount": "RAISE", "reason": "Generous"}, "cannot exceed"),
        ({"amount": "LOWER", "reason": "   "}, "give the reason"),
        ({"amount": "SAME", "reason": "Unchanged"}, "lowers at least one line"),
        ({"amount": "abc", "reason": "Typo"}, "Enter an amount"),
        ({"amount": "-1", "reason": "Negative"}, "at least 0"),
        ({"amount": "LOWER"}, "give the reason"),
    ],
)
def test_partial_approval_refusals(change, fragment, two_lines, regulator_user, rate):
    claim, (big, _small) = two_lines
    services.claim_start_review(claim=claim, actor=regulator_user)
    amount = {"RAISE": rate * 5, "LOWER": rate, "SAME": rate * 4}.get(change["amount"], change["amount"])
    adjustments = {str(big.pk): {**change, "amount": str(amount)}}
    error = assert_refused(
        "invalid",
        services.claim_decide,
        claim=claim,
        actor=regulator_user,
        decision=services.PARTIAL,
        adjustments=adjustments,
    )
    assert fragment in str(error.message)
    assert error.field == "adjustments"
    claim.refresh_from_db()
    assert claim.status == C.UNDER_REVIEW
    big.refresh_from_db()
    assert big.approved_amount is None


def test_partial_approval_needs_adjustments_on_eligible_lines_of_the_claim(two_lines, regulator_user, research_office):
    claim, (big, _small) = two_lines
    services.claim_start_review(claim=claim, actor=regulator_user)
    decide = {"claim": claim, "actor": regulator_user, "decision": services.PARTIAL}
    assert_refused("invalid", services.claim_decide, **decide)
    assert_refused("invalid", services.claim_decide, **decide, adjustments={"999999": {"amount": "1", "reason": "x"}})
    assert_refused("invalid", services.claim_decide, **decide, adjustments={"abc": {"amount": "1", "reason": "x"}})
    assert_refused("invalid", services.claim_decide, **decide, adjustments={str(big.pk): "1.00"})
    assert_refused("invalid", services.claim_decide, **decide, adjustments=[(big.pk, {"amount": "1"})])


def test_only_a_partial_approval_adjusts_lines(under_review, regulator_user):
    line = under_review.lines.get()
    adjustments = {str(line.pk): {"amount": "1.00", "reason": "x"}}
    assert_refused(
        "invalid",
        services.claim_decide,
        claim=under_review,
        actor=regulator_user,
        decision=services.APPROVE,
        adjustments=adjustments,
    )


def test_reject_needs_a_note_and_approves_nothing(under_review, regulator_user):
    error = assert_refused(
        "invalid", services.claim_decide, claim=under_review, actor=regulator_user, decision=services.REJECT, note=" "
    )
    assert error.field == "note"
    claim = services.claim_decide(
        claim=under_review, actor=regulator_user, decision=services.REJECT, note="Research not completed per audit"
    )
    assert (claim.status, claim.amount_approved, claim.lines.get().approved_amount) == (C.REJECTED, 0, 0)


def test_an_unknown_decision_is_refused(under_review, regulator_user):
    error = assert_refused("invalid", services.claim_decide, claim=under_review, actor=regulator_user, decision="maybe")
    assert error.field == "decision"


def test_a_decision_needs_the_review_started_and_is_taken_once(submitted, regulator_user):
    assert_refused(
        "transition_not_allowed",
        services.claim_decide,
        claim=submitted,
        actor=regulator_user,
        decision=services.APPROVE,
    )
    services.claim_start_review(claim=submitted, actor=regulator_user)
    services.claim_decide(claim=submitted, actor=regulator_user, decision=services.APPROVE)
    assert_refused(
        "transition_not_allowed",
        services.claim_decide,
        claim=submitted,
        actor=regulator_user,
        decision=services.REJECT,
        note="Changed my mind",
    )


# Payment ----------------------------------------------------------------------------------------------------


def test_pay_records_amount_date_and_reference(approved, regulator_user, rate):
    today = timezone.localdate()
    claim = services.claim_pay(
        claim=approved, actor=regulator_user, amount=str(rate * 5), paid_on=today, payment_reference=" TX-1 "
    )
    assert (claim.status, claim.amount_paid, claim.paid_on, claim.payment_reference) == (
        C.PAID,
        rate * 5,
        today,
        "TX-1",
    )
    assert_refused(
        "transition_not_allowed", services.claim_pay, claim=claim, actor=regulator_user, amount="1", paid_on=today
    )


@pytest.mark.parametrize(
    ("amount", "code"), [("MORE", "overpayment"), ("0", "invalid"), ("-1", "invalid"), ("x", "invalid")]
)
def test_pay_refuses_more_than_approved_or_nothing(amount, code, approved, regulator_user, rate):
    amount = str(rate * 5 + Decimal("0.01")) if amount == "MORE" else amount
    error = assert_refused(
        code, services.claim_pay, claim=approved, actor=regulator_user, amount=amount, paid_on=timezone.localdate()
    )
    assert error.field == "amount"


def test_pay_refuses_a_date_in_the_future_or_before_the_decision(approved, regulator_user):
    today = timezone.localdate()
    for day in (
        today + datetime.timedelta(days=1),
        timezone.localdate(approved.decided_at) - datetime.timedelta(days=1),
    ):
        error = assert_refused(
            "invalid", services.claim_pay, claim=approved, actor=regulator_user, amount="1.00", paid_on=day
        )
        assert error.field == "paid_on"


def test_a_partial_payment_of_a_partial_approval(two_lines, regulator_user, rate):
    claim, (big, _small) = two_lines
    services.claim_start_review(claim=claim, actor=regulator_user)
    services.claim_decide(
        claim=claim,
        actor=regulator_user,
        decision=services.PARTIAL,
        adjustments={str(big.pk): {"amount": str(rate), "reason": "Audit"}},
    )
    claim = services.claim_pay(claim=claim, actor=regulator_user, amount=str(rate * 3), paid_on=timezone.localdate())
    assert (claim.status, claim.amount_paid) == (C.PAID, rate * 3)


def test_pay_before_a_decision_or_for_a_rejection_is_refused(under_review, regulator_user):
    pay = {"actor": regulator_user, "amount": "1.00", "paid_on": timezone.localdate()}
    assert_refused("transition_not_allowed", services.claim_pay, claim=under_review, **pay)
    services.claim_decide(claim=under_review, actor=regulator_user, decision=services.REJECT, note="Out of scope")
    assert_refused("transition_not_allowed", services.claim_pay, claim=under_review, **pay)


# Fixed amounts and discarding ---------------------------------------------------------------------------------


def test_the_regulator_of_the_region_sets_a_fixed_amount(region, regulator_user):
    program = fixed_program(region)
    updated = services.program_set_fixed_amount(program=program, actor=regulator_user, amount=str(FIXED_AMOUNT))
    assert (updated.fixed_amount_rmb, updated.fixed_amount_set_by) == (FIXED_AMOUNT, regulator_user)
    assert updated.fixed_amount_set_at is not None


@pytest.mark.parametrize("amount", ["0", "-10", "ten", "1.001"])
def test_a_fixed_amount_must_be_a_positive_sum_in_fen(amount, region, regulator_user):
    error = assert_refused(
        "invalid", services.program_set_fixed_amount, program=fixed_program(region), actor=regulator_user, amount=amount
    )
    assert error.field == "amount"


def test_a_per_patient_program_has_no_fixed_amount(program, regulator_user):
    assert_refused("invalid", services.program_set_fixed_amount, program=program, actor=regulator_user, amount="1.00")


def test_only_a_regulator_of_the_region_sets_a_fixed_amount(region, research_office):
    program = fixed_program(region)
    for actor in (research_office, UserFactory(role=Role.REGULATOR, region=RegionFactory(code="elsewhere"))):
        assert_refused(
            "permission_denied", services.program_set_fixed_amount, program=program, actor=actor, amount="1.00"
        )
    program.refresh_from_db()
    assert program.fixed_amount_rmb is None


def test_a_submitted_claim_is_not_discarded(submitted, research_office):
    assert_refused("transition_not_allowed", services.claim_discard, claim=submitted, actor=research_office)
    assert Claim.objects.filter(pk=submitted.pk).exists()


def test_discard_a_draft(draft, research_office):
    services.claim_discard(claim=draft, actor=research_office)
    assert not Claim.objects.exists()


# Who may take each step ----------------------------------------------------------------------------------------


def _others(institution, region) -> dict:
    """Everyone who is not the hospital's research office or the region's regulator."""
    return {
        "ethics_office": UserFactory(role=Role.ETHICS_OFFICE, institution=institution),
        "pi": UserFactory(role=Role.PI, institution=institution),
        "other_hospital_office": UserFactory(role=Role.RESEARCH_OFFICE, institution=InstitutionFactory(region=region)),
        "regulator": UserFactory(role=Role.REGULATOR, region=region),
        "inactive_office": UserFactory(role=Role.RESEARCH_OFFICE, institution=institution, is_active=False),
    }


OFFICE_STEPS = {
    "recompute": lambda claim, actor: services.claim_recompute(claim=claim, actor=actor),
    "exclude": lambda claim, actor: services.line_exclude(line=claim.lines.get(), actor=actor, reason="x"),
    "submit": lambda claim, actor: services.claim_submit(claim=claim, actor=actor),
    "discard": lambda claim, actor: services.claim_discard(claim=claim, actor=actor),
}


@pytest.mark.parametrize("step", sorted(OFFICE_STEPS))
def test_only_the_hospitals_research_office_prepares_its_claim(step, draft, institution, region):
    for who, actor in _others(institution, region).items():
        with pytest.raises(DomainError) as caught:
            OFFICE_STEPS[step](draft, actor)
        assert caught.value.code == "permission_denied", who
    draft.refresh_from_db()
    assert (draft.status, draft.lines.get().status) == (C.DRAFT, L.ELIGIBLE)


def test_only_the_hospitals_research_office_includes_a_line(draft, research_office, institution, region):
    line = draft.lines.get()
    services.line_exclude(line=line, actor=research_office, reason="x")
    for actor in _others(institution, region).values():
        assert_refused("permission_denied", services.line_include, line=line, actor=actor)


def test_only_the_hospitals_research_office_adds_cost_items(research_office, region, institution, gene_trial):
    claim = services.claim_open(actor=research_office, program=insurance_program(region), year=YEAR)
    for actor in _others(institution, region).values():
        assert_refused(
            "permission_denied",
            services.cost_item_add,
            claim=claim,
            actor=actor,
            trial=gene_trial,
            item_reference="P-1",
            cost_rmb="100.00",
        )


def _not_the_regulator(institution, research_office) -> dict:
    return {
        "research_office": research_office,
        "ethics_office": UserFactory(role=Role.ETHICS_OFFICE, institution=institution),
        "pi": UserFactory(role=Role.PI, institution=institution),
        "regulator_elsewhere": UserFactory(role=Role.REGULATOR, region=RegionFactory(code="elsewhere")),
        "inactive_regulator": UserFactory(role=Role.REGULATOR, region=institution.region, is_active=False),
    }


def test_only_a_regulator_of_the_region_reviews_decides_and_pays(
    submitted, regulator_user, institution, research_office
):
    today = timezone.localdate()
    outsiders = _not_the_regulator(institution, research_office)
    for who, actor in outsiders.items():
        with pytest.raises(DomainError) as caught:
            services.claim_start_review(claim=submitted, actor=actor)
        assert caught.value.code == "permission_denied", who
    services.claim_start_review(claim=submitted, actor=regulator_user)
    for who, actor in outsiders.items():
        with pytest.raises(DomainError) as caught:
            services.claim_decide(claim=submitted, actor=actor, decision=services.APPROVE)
        assert caught.value.code == "permission_denied", who
    services.claim_decide(claim=submitted, actor=regulator_user, decision=services.APPROVE)
    for who, actor in outsiders.items():
        with pytest.raises(DomainError) as caught:
            services.claim_pay(claim=submitted, actor=actor, amount="1.00", paid_on=today)
        assert caught.value.code == "permission_denied", who
    submitted.refresh_from_db()
    assert submitted.status == C.APPROVED


def test_a_refused_transition_is_a_transition_error(submitted, research_office):
    with pytest.raises(TransitionNotAllowed):
        services.claim_recompute(claim=submitted, actor=research_office)


# --- the cap per project covers the project, whichever hospitals claim it (issue 12) -------------------------------


def _second_site_claims(program, region, trial, office, other_office, regulator_user):
    """A second Shanghai hospital that recruited for the same trial claims after the first hospital's claim."""
    from tests.factories.trials import TrialSiteFactory, approve_site

    site = TrialSiteFactory(trial=trial, institution=other_office.institution)
    approve_site(site, datetime.date(2024, 2, 10))
    enrolment.enrolment_report(
        site=site, actor=other_office, kind="enrolled", occurred_on=datetime.date(2024, 3, 20), count=8
    )
    return services.claim_open(actor=other_office, program=program, year=CLAIM_YEAR)


def test_two_hospitals_of_one_project_share_its_cap(program, region, institution, research_office, regulator_user):
    """001 task 5 caps "每个项目资助总额不超过50万元": a trial with two Shanghai hospitals got 800,000 in total."""
    rate = policy_value("subsidy_per_patient_rmb", region)
    cap = policy_value("subsidy_project_cap_rmb", region)
    trial = completed_gene_trial(institution, enrolled=int(cap / rate) - 2, actor=research_office)
    first = services.claim_open(actor=research_office, program=program, year=CLAIM_YEAR)
    services.claim_submit(claim=first, actor=research_office)
    first_amount = first.lines.get(trial=trial).amount_computed
    other = InstitutionFactory(region=region)
    other_office = UserFactory(role=Role.RESEARCH_OFFICE, institution=other)
    second = _second_site_claims(program, region, trial, research_office, other_office, regulator_user)
    line = second.lines.get(trial=trial)
    assert first_amount + line.amount_computed == cap
    assert line.previously_awarded == first_amount
    assert line.explanation[-1]["scope"] == "project"
    with translation.override("en"):
        text = rules.describe_step(line.explanation[-1])
    assert "over all hospitals" in text and "to other hospitals" in text


def test_a_cap_per_hospital_leaves_each_hospital_its_own(program, region, institution, research_office, regulator_user):
    program.project_cap_scope = SubsidyProgram.ProjectCapScope.PROJECT_PER_HOSPITAL
    program.save(update_fields=["project_cap_scope"])
    rate = policy_value("subsidy_per_patient_rmb", region)
    cap = policy_value("subsidy_project_cap_rmb", region)
    trial = completed_gene_trial(institution, enrolled=int(cap / rate) - 2, actor=research_office)
    first = services.claim_open(actor=research_office, program=program, year=CLAIM_YEAR)
    services.claim_submit(claim=first, actor=research_office)
    other_office = UserFactory(role=Role.RESEARCH_OFFICE, institution=InstitutionFactory(region=region))
    second = _second_site_claims(program, region, trial, research_office, other_office, regulator_user)
    line = second.lines.get(trial=trial)
    assert line.amount_computed == 8 * rate
    assert line.previously_awarded == 0
