"""Eligibility through the service that applies it: every rule of Shanghai's and Beijing's programs, as a line of
a claim the research office opens, and the checks on a rule's parameters."""

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.utils import translation

from cgtclinic.models import PolicyParameter
from subsidies import services
from subsidies.models import ClaimLine, EligibilityRule
from tests.factories.cgtclinic import InstitutionFactory, RegionFactory, SponsorFactory
from tests.factories.subsidies import (
    STARTUP_TARGET_CODE,
    EligibilityRuleFactory,
    SubsidyProgramFactory,
    beijing_program,
    completed_gene_trial,
    shanghai_program,
)
from tests.factories.trials import TrialFactory, TrialSiteFactory, approve_site, trial_with_history
from trials.models import Trial

L = ClaimLine.Status
K = EligibilityRule.Kind
YEAR = 2025  # the completed_gene_trial helper completes its trials in this year


def rate(region):
    return PolicyParameter.objects.get(code="subsidy_per_patient_rmb", region=region).value


def open_line(research_office, program, trial, year=YEAR) -> ClaimLine:
    claim = services.claim_open(actor=research_office, program=program, year=year)
    return claim.lines.get(trial=trial)


def rules_failed(line: ClaimLine) -> list[str]:
    return [reason["rule"] for reason in line.ineligible_reasons]


def message(line: ClaimLine, language="en") -> str:
    return " ".join(reason[language] for reason in line.ineligible_reasons)


# Shanghai: gene therapy, IIT or a local enterprise's trial, completed after the program began ----------------


def test_a_completed_gene_therapy_iit_with_ethics_approval_qualifies(research_office, program, region):
    trial = completed_gene_trial(research_office.institution, enrolled=5, actor=research_office)
    line = open_line(research_office, program, trial)
    assert (line.status, line.ineligible_reasons) == (L.ELIGIBLE, [])
    assert (line.enrolled_total, line.patients_claimed, line.amount_computed) == (5, 5, rate(region) * 5)
    assert line.evidence["completed_on"] == "2025-06-30"
    assert line.evidence["kind"] == Trial.Kind.IIT


def test_a_therapy_category_outside_the_program_is_refused(research_office, program):
    trial = completed_gene_trial(
        research_office.institution, enrolled=5, actor=research_office, therapy_category=Trial.TherapyCategory.STEM_CELL
    )
    line = open_line(research_office, program, trial)
    assert (line.status, rules_failed(line), line.amount_computed) == (L.INELIGIBLE, [K.THERAPY_CATEGORY], 0)
    with translation.override("en"):
        assert str(Trial.TherapyCategory.STEM_CELL.label) in message(line)
        assert str(Trial.TherapyCategory.GENE_EDITING.label) in message(line)


def test_an_industry_trial_of_an_enterprise_registered_in_the_region_qualifies(research_office, program, local_sponsor):
    trial = completed_gene_trial(
        research_office.institution,
        enrolled=3,
        actor=research_office,
        kind=Trial.Kind.REGISTRATION,
        sponsor=local_sponsor,
    )
    assert open_line(research_office, program, trial).status == L.ELIGIBLE


def test_an_industry_trial_of_an_enterprise_from_elsewhere_is_refused(research_office, program, region):
    outsider = SponsorFactory(region=RegionFactory(code="elsewhere"))
    trial = completed_gene_trial(
        research_office.institution, enrolled=3, actor=research_office, kind=Trial.Kind.REGISTRATION, sponsor=outsider
    )
    line = open_line(research_office, program, trial)
    assert rules_failed(line) == [K.TRIAL_KIND]
    with translation.override("en"):
        assert region.name in message(line)


def test_an_industry_trial_without_a_sponsor_is_refused(research_office, program):
    trial = completed_gene_trial(
        research_office.institution, enrolled=3, actor=research_office, kind=Trial.Kind.REGISTRATION, sponsor=None
    )
    assert rules_failed(open_line(research_office, program, trial)) == [K.TRIAL_KIND]


def test_other_clinical_research_is_refused(research_office, program):
    trial = completed_gene_trial(research_office.institution, enrolled=3, actor=research_office, kind=Trial.Kind.OTHER)
    line = open_line(research_office, program, trial)
    assert rules_failed(line) == [K.TRIAL_KIND]
    with translation.override("en"):
        assert str(Trial.Kind.OTHER.label) in message(line)


def test_the_cgt_enterprise_flag_is_required_when_the_program_asks_for_it(research_office, region):
    program = shanghai_program(region)
    rule = program.eligibility_rules.get(kind=K.TRIAL_KIND)
    rule.params = {**rule.params, "sponsor_cgt_enterprise": True}
    rule.save()
    not_cgt = SponsorFactory(region=region, is_cgt_enterprise=False)
    cgt = SponsorFactory(region=region, is_cgt_enterprise=True)
    refused = completed_gene_trial(
        research_office.institution, enrolled=2, actor=research_office, kind=Trial.Kind.REGISTRATION, sponsor=not_cgt
    )
    accepted = completed_gene_trial(
        research_office.institution, enrolled=2, actor=research_office, kind=Trial.Kind.REGISTRATION, sponsor=cgt
    )
    claim = services.claim_open(actor=research_office, program=program, year=YEAR)
    assert rules_failed(claim.lines.get(trial=refused)) == [K.TRIAL_KIND]
    assert "CGT" in claim.lines.get(trial=refused).ineligible_reasons[0]["en"]
    assert claim.lines.get(trial=accepted).status == L.ELIGIBLE


def test_research_not_completed_is_refused(research_office, program):
    trial = completed_gene_trial(research_office.institution, enrolled=4, actor=research_office)
    Trial.objects.filter(pk=trial.pk).update(status=Trial.Status.ENROLMENT_CLOSED)
    line = open_line(research_office, program, trial)
    assert rules_failed(line) == [K.RESEARCH_COMPLETED]
    with translation.override("en"):
        assert str(Trial.Status.ENROLMENT_CLOSED.label) in message(line)


def test_a_terminated_trial_is_not_completed_research(research_office, program):
    trial = trial_with_history(
        [
            (Trial.Status.SUBMITTED, datetime.date(2024, 1, 1)),
            (Trial.Status.UNDER_REVIEW, datetime.date(2024, 1, 10)),
            (Trial.Status.APPROVED, datetime.date(2024, 2, 1)),
            (Trial.Status.ACTIVE, datetime.date(2024, 3, 1)),
            (Trial.Status.TERMINATED, datetime.date(2025, 3, 1)),
        ],
        lead_institution=research_office.institution,
        therapy_category=Trial.TherapyCategory.GENE_EDITING,
    )
    approve_site(trial.sites.get(), datetime.date(2024, 2, 1))
    assert rules_failed(open_line(research_office, program, trial)) == [K.RESEARCH_COMPLETED]


def test_research_completed_after_the_reference_date_is_refused(research_office, program):
    trial = completed_gene_trial(research_office.institution, enrolled=4, actor=research_office)
    line = open_line(research_office, program, trial, year=2024)  # reference date 2024-12-31, completed 2025
    assert line.claim.reference_date == datetime.date(2024, 12, 31)
    assert rules_failed(line) == [K.RESEARCH_COMPLETED]
    assert "after the claim's reference date" in line.ineligible_reasons[0]["en"]


def test_research_completed_before_the_program_began_is_refused(research_office, program):
    since = datetime.date.fromisoformat(
        program.eligibility_rules.get(kind=K.RESEARCH_COMPLETED).params["completed_on_or_after"]
    )
    trial = completed_gene_trial(
        research_office.institution,
        enrolled=0,
        actor=research_office,
        started=since - datetime.timedelta(days=400),
        completed_on=since - datetime.timedelta(days=1),
    )
    line = open_line(research_office, program, trial)
    assert rules_failed(line) == [K.RESEARCH_COMPLETED]
    assert since.isoformat() in line.ineligible_reasons[0]["en"]


def test_a_site_without_ethics_approval_is_refused(research_office, program):
    trial = completed_gene_trial(research_office.institution, enrolled=4, actor=research_office)
    trial.sites.update(ethics_approved_on=None)
    line = open_line(research_office, program, trial)
    assert (line.status, rules_failed(line)) == (L.INELIGIBLE, [K.ETHICS_APPROVAL])


def test_every_failed_rule_is_listed_in_both_languages(research_office, program):
    trial = completed_gene_trial(
        research_office.institution,
        enrolled=2,
        actor=research_office,
        kind=Trial.Kind.OTHER,
        therapy_category=Trial.TherapyCategory.IMMUNE_CELL,
    )
    trial.sites.update(ethics_approved_on=None)
    line = open_line(research_office, program, trial, year=2024)
    assert rules_failed(line) == [K.THERAPY_CATEGORY, K.TRIAL_KIND, K.RESEARCH_COMPLETED, K.ETHICS_APPROVAL]
    for reason in line.ineligible_reasons:
        assert set(reason) == {"rule", "zh-hans", "en"}
        assert reason["zh-hans"] and reason["en"]


def test_a_qualifying_trial_with_no_patient_left_to_claim_is_not_eligible(research_office, program):
    trial = completed_gene_trial(research_office.institution, enrolled=0, actor=research_office)
    line = open_line(research_office, program, trial)
    assert (line.status, rules_failed(line)) == (L.INELIGIBLE, ["nothing_to_claim"])


def test_only_trials_that_were_approved_are_listed_and_only_the_hospitals_own_sites(research_office, program, region):
    institution = research_office.institution
    never_approved = [
        TrialFactory(lead_institution=institution, status=status)
        for status in (Trial.Status.DRAFT, Trial.Status.SUBMITTED, Trial.Status.UNDER_REVIEW, Trial.Status.WITHDRAWN)
    ]
    elsewhere = completed_gene_trial(InstitutionFactory(region=region), enrolled=0, actor=research_office)
    # A trial led by a neighbour in which this hospital is a participating site is the hospital's line.
    led_by_neighbour = completed_gene_trial(InstitutionFactory(region=region), enrolled=0, actor=research_office)
    TrialSiteFactory(trial=led_by_neighbour, institution=institution, ethics_approved_on=datetime.date(2024, 2, 1))
    claim = services.claim_open(actor=research_office, program=program, year=YEAR)
    listed = set(claim.lines.values_list("trial_id", flat=True))
    assert listed == {led_by_neighbour.pk}
    assert not listed & {t.pk for t in [*never_approved, elsewhere]}
    assert claim.lines.get().site.institution == institution


# Beijing: local CGT enterprise, start-up within the monitoring target of its day ----------------------------


@pytest.fixture
def beijing(region):
    return beijing_program(region)


def _weeks(region, on: datetime.date) -> int:
    return int(PolicyParameter.value_for(STARTUP_TARGET_CODE, region=region, on=on))


def _industry_trial(research_office, sponsor, *, received_on, startup_days):
    trial = completed_gene_trial(
        research_office.institution, enrolled=2, actor=research_office, kind=Trial.Kind.REGISTRATION, sponsor=sponsor
    )
    site = trial.sites.get()
    site.submission_received_on = received_on
    site.site_initiated_on = None if startup_days is None else received_on + datetime.timedelta(days=startup_days)
    site.save()
    return trial


def test_start_up_within_the_target_in_force_on_receipt_qualifies(research_office, beijing, local_sponsor, region):
    received = datetime.date(2024, 6, 3)
    trial = _industry_trial(
        research_office, local_sponsor, received_on=received, startup_days=_weeks(region, received) * 7
    )
    line = open_line(research_office, beijing, trial)
    assert line.status == L.ELIGIBLE
    assert line.evidence["startup_days"] == _weeks(region, received) * 7


def test_start_up_over_the_target_is_refused_with_the_weeks(research_office, beijing, local_sponsor, region):
    received = datetime.date(2024, 6, 3)
    target = _weeks(region, received)
    trial = _industry_trial(research_office, local_sponsor, received_on=received, startup_days=target * 7 + 1)
    line = open_line(research_office, beijing, trial)
    assert rules_failed(line) == [K.STARTUP_WITHIN_TARGET]
    assert f"over the target of {target} weeks" in line.ineligible_reasons[0]["en"]


@pytest.mark.parametrize(
    "received",
    [datetime.date(2024, 4, 20), datetime.date(2024, 6, 3), datetime.date(2025, 5, 6)],
    ids=["first-target", "action-plan", "2025-measures"],
)
def test_the_same_start_up_time_is_judged_by_the_target_of_its_day(
    received, research_office, beijing, local_sponsor, region
):
    """The target tightened twice; each site is held to the one in force when it received the submission."""
    targets = sorted(
        {int(row.value) for row in PolicyParameter.objects.filter(code=STARTUP_TARGET_CODE, region=region)}
    )
    assert len(targets) == 3
    # A duration between the strictest and the loosest target passes under the looser ones only.
    days = (targets[0] + 1) * 7
    trial = _industry_trial(research_office, local_sponsor, received_on=received, startup_days=days)
    line = open_line(research_office, beijing, trial)
    expected = L.ELIGIBLE if days <= _weeks(region, received) * 7 else L.INELIGIBLE
    assert line.status == expected
    assert (received.year == 2025) == (expected == L.INELIGIBLE)


def test_missing_start_up_dates_are_refused(research_office, beijing, local_sponsor):
    trial = _industry_trial(research_office, local_sponsor, received_on=datetime.date(2024, 6, 3), startup_days=None)
    line = open_line(research_office, beijing, trial)
    assert rules_failed(line) == [K.STARTUP_WITHIN_TARGET]
    assert "not recorded" in line.ineligible_reasons[0]["en"]


def test_a_submission_received_before_any_target_is_refused(research_office, beijing, local_sponsor, region):
    first = PolicyParameter.objects.filter(code=STARTUP_TARGET_CODE, region=region).order_by("effective_from").first()
    received = first.effective_from - datetime.timedelta(days=30)
    trial = _industry_trial(research_office, local_sponsor, received_on=received, startup_days=10)
    line = open_line(research_office, beijing, trial)
    assert rules_failed(line) == [K.STARTUP_WITHIN_TARGET]
    assert "No start-up target" in line.ineligible_reasons[0]["en"]


def test_beijing_takes_only_local_cgt_enterprises_trials_not_iits(research_office, beijing, region):
    iit = completed_gene_trial(research_office.institution, enrolled=2, actor=research_office)
    site = iit.sites.get()
    site.submission_received_on, site.site_initiated_on = datetime.date(2024, 6, 3), datetime.date(2024, 7, 1)
    site.save()
    line = open_line(research_office, beijing, iit)
    assert rules_failed(line) == [K.TRIAL_KIND]


def test_a_target_of_whole_tens_of_weeks_reads_as_a_number(research_office, beijing, local_sponsor, region):
    received = datetime.date(2025, 5, 6)
    PolicyParameter.objects.filter(code=STARTUP_TARGET_CODE, region=region, effective_to__isnull=True).update(
        value=_weeks(region, received) + 10
    )
    target = _weeks(region, received)
    trial = _industry_trial(research_office, local_sponsor, received_on=received, startup_days=target * 7 + 7)
    reason = open_line(research_office, beijing, trial).ineligible_reasons[0]["en"]
    assert f"target of {target} weeks" in reason
    assert "E+" not in reason


# The parameters of a rule -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        (K.THERAPY_CATEGORY, {"categories": ["viral_vector_gene"]}),
        (K.TRIAL_KIND, {"iit": True}),
        (K.TRIAL_KIND, {"industry_sponsor_in_region": True, "sponsor_cgt_enterprise": True}),
        (K.RESEARCH_COMPLETED, {}),
        (K.RESEARCH_COMPLETED, {"completed_on_or_after": "2023-08-31"}),
        (K.ETHICS_APPROVAL, {}),
        (K.STARTUP_WITHIN_TARGET, {"parameter": STARTUP_TARGET_CODE}),
    ],
)
def test_good_parameters_pass(kind, params, region):
    EligibilityRuleFactory.build(program=SubsidyProgramFactory(region=region), kind=kind, params=params).full_clean()


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        (K.THERAPY_CATEGORY, {}),
        (K.THERAPY_CATEGORY, {"categories": []}),
        (K.THERAPY_CATEGORY, {"categories": ["homeopathy"]}),
        (K.THERAPY_CATEGORY, {"categories": "gene_editing"}),
        (K.TRIAL_KIND, {}),
        (K.TRIAL_KIND, {"sponsor_cgt_enterprise": True}),
        (K.TRIAL_KIND, {"iit": True, "foreign": True}),
        (K.RESEARCH_COMPLETED, {"completed_on_or_after": "31/08/2023"}),
        (K.RESEARCH_COMPLETED, {"completed_on_or_after": 20230831}),
        (K.STARTUP_WITHIN_TARGET, {}),
        ("moon_phase", {}),
    ],
)
def test_bad_parameters_are_refused(kind, params, region):
    rule = EligibilityRuleFactory.build(program=SubsidyProgramFactory(region=region), kind=kind, params=params)
    with pytest.raises(ValidationError):
        rule.full_clean()
