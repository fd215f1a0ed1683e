"""Subsidy programs as the policy seeds make them, with their policy values created by factories."""

import datetime
from decimal import Decimal

import factory
from django.utils import timezone

from cgtclinic.models import PolicyParameter
from subsidies import services
from subsidies.models import Claim, ClaimLine, EligibilityRule, SubsidyProgram
from tests.factories.cgtclinic import PolicyParameterFactory, RegionFactory
from tests.factories.trials import approve_site, trial_with_history
from trials import enrolment
from trials.models import Trial

# The values of Shanghai's gene-therapy subsidy (001, task 5) as the policy seeds hold them; tests that need a
# number read it from the PolicyParameter rows these create.
SHANGHAI_VALUES = {
    "subsidy_per_patient_rmb": Decimal("50000"),
    "subsidy_project_cap_rmb": Decimal("500000"),
    "subsidy_institution_year_cap_rmb": Decimal("5000000"),
}
INSURANCE_VALUES = {
    "insurance_premium_subsidy_percent": Decimal("50"),
    "insurance_premium_subsidy_cap_rmb": Decimal("500000"),
}
PROGRAM_START = datetime.date(2023, 8, 31)
# The year claims over completed_gene_trial trials are for: it completes its trials in mid-2025.
CLAIM_YEAR = 2025
# Beijing's start-up target as the policy seeds hold it: (weeks, in force from, to), tightened twice.
STARTUP_TARGET_CODE = "startup_target_weeks"
BEIJING_STARTUP_TARGETS = [
    (Decimal("28"), datetime.date(2024, 4, 17), datetime.date(2024, 5, 14)),
    (Decimal("25"), datetime.date(2024, 5, 15), datetime.date(2025, 4, 6)),
    (Decimal("20"), datetime.date(2025, 4, 7), None),
]


def policy_values(region, values: dict, *, effective_from=PROGRAM_START) -> dict[str, PolicyParameter]:
    rows = {}
    for code, value in values.items():
        unit = PolicyParameter.Unit.PERCENT if code.endswith("percent") else PolicyParameter.Unit.RMB
        rows[code] = PolicyParameterFactory(
            code=code,
            region=region,
            value=value,
            unit=unit,
            effective_from=effective_from,
            source_document="001_fcdf358de37b7c29.txt",
            source_clause="四、重大任务（二）第5条",
        )
    return rows


class SubsidyProgramFactory(factory.django.DjangoModelFactory):
    """A per-patient program with caps; create its policy values with ``policy_values`` (or ``shanghai_program``)."""

    class Meta:
        model = SubsidyProgram

    code = factory.Sequence(lambda n: f"program-{n}")
    region = factory.SubFactory(RegionFactory)
    name_zh = factory.Sequence(lambda n: f"基因治疗临床研究医疗机构资助 {n}")
    name_en = factory.Sequence(lambda n: f"Gene-therapy trial subsidy {n}")
    source_document = "001_fcdf358de37b7c29.txt"
    source_clause = "四、重大任务（二）第5条"
    year_from = 2023
    year_to = None
    amount_rule = SubsidyProgram.AmountRule.PER_PATIENT
    rate_parameter = "subsidy_per_patient_rmb"
    project_cap_parameter = "subsidy_project_cap_rmb"
    institution_year_cap_parameter = "subsidy_institution_year_cap_rmb"
    selective = True


class EligibilityRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EligibilityRule

    program = factory.SubFactory(SubsidyProgramFactory)
    kind = EligibilityRule.Kind.ETHICS_APPROVAL
    params = factory.LazyFunction(dict)


SHANGHAI_RULES = [
    (
        EligibilityRule.Kind.THERAPY_CATEGORY,
        {"categories": ["viral_vector_gene", "gene_editing", "nucleic_acid", "gene_modified_cell"]},
    ),
    (EligibilityRule.Kind.TRIAL_KIND, {"iit": True, "industry_sponsor_in_region": True}),
    (EligibilityRule.Kind.RESEARCH_COMPLETED, {"completed_on_or_after": "2023-08-31"}),
    (EligibilityRule.Kind.ETHICS_APPROVAL, {}),
]


def shanghai_program(region, **kwargs) -> SubsidyProgram:
    """Shanghai's per-patient gene-therapy subsidy with its caps and eligibility rules, for ``region``."""
    policy_values(region, SHANGHAI_VALUES)
    program = SubsidyProgramFactory(region=region, **kwargs)
    for position, (kind, params) in enumerate(SHANGHAI_RULES):
        EligibilityRuleFactory(program=program, kind=kind, params=params, position=position)
    return program


def insurance_program(region, **kwargs) -> SubsidyProgram:
    """Shanghai's 50% liability-insurance premium subsidy (capped per policy), for ``region``."""
    policy_values(region, INSURANCE_VALUES)
    return SubsidyProgramFactory(
        region=region,
        amount_rule=SubsidyProgram.AmountRule.PERCENT_OF_COST,
        rate_parameter="",
        project_cap_parameter="",
        institution_year_cap_parameter="",
        percent_parameter="insurance_premium_subsidy_percent",
        item_cap_parameter="insurance_premium_subsidy_cap_rmb",
        source_clause="五、保障措施（五）",
        **kwargs,
    )


def fixed_program(region, **kwargs) -> SubsidyProgram:
    """A fixed-amount program (Beijing's post-subsidy) whose amount the regulator sets."""
    return SubsidyProgramFactory(
        region=region,
        amount_rule=SubsidyProgram.AmountRule.FIXED_AMOUNT,
        rate_parameter="",
        project_cap_parameter="",
        institution_year_cap_parameter="",
        source_document="000_db00af38292194d0.txt",
        source_clause="二、重点任务 3",
        **kwargs,
    )


def startup_targets(region) -> list[PolicyParameter]:
    """Beijing's start-up target rows (28, then 25, then 20 weeks) for ``region``."""
    return [
        PolicyParameterFactory(
            code=STARTUP_TARGET_CODE,
            region=region,
            value=weeks,
            unit=PolicyParameter.Unit.WEEKS,
            effective_from=start,
            effective_to=end,
            source_document="004_58624516628e3d39.txt",
            source_clause="二、重点任务 第6条",
        )
        for weeks, start, end in BEIJING_STARTUP_TARGETS
    ]


def beijing_program(region, **kwargs) -> SubsidyProgram:
    """Beijing's post-subsidy: a fixed amount per project for trials of local CGT enterprises whose site started
    up within the monitoring target (linked to monitoring, 004 item 6)."""
    startup_targets(region)
    kwargs.setdefault("year_from", 2024)
    program = fixed_program(region, **kwargs)
    rules = [
        (EligibilityRule.Kind.TRIAL_KIND, {"industry_sponsor_in_region": True, "sponsor_cgt_enterprise": True}),
        (EligibilityRule.Kind.ETHICS_APPROVAL, {}),
        (EligibilityRule.Kind.STARTUP_WITHIN_TARGET, {"parameter": STARTUP_TARGET_CODE}),
    ]
    for position, (kind, params) in enumerate(rules):
        EligibilityRuleFactory(program=program, kind=kind, params=params, position=position)
    return program


def completed_gene_trial(
    institution,
    *,
    enrolled: int,
    actor,
    started=datetime.date(2024, 3, 1),
    completed_on=datetime.date(2025, 6, 30),
    **kwargs,
):
    """A gene-therapy IIT at ``institution`` that enrolled ``enrolled`` patients in 2024 (10 days after it
    started) and completed in 2025."""
    history = [
        (Trial.Status.SUBMITTED, started - datetime.timedelta(days=60)),
        (Trial.Status.UNDER_REVIEW, started - datetime.timedelta(days=50)),
        (Trial.Status.APPROVED, started - datetime.timedelta(days=20)),
        (Trial.Status.ACTIVE, started),
        (Trial.Status.ENROLMENT_CLOSED, datetime.date(2024, 12, 20)),
        (Trial.Status.COMPLETED, completed_on),
    ]
    kwargs.setdefault("kind", Trial.Kind.IIT)
    kwargs.setdefault("therapy_category", Trial.TherapyCategory.VIRAL_VECTOR_GENE)
    trial = trial_with_history(history, lead_institution=institution, **kwargs)
    site = trial.sites.get()
    approve_site(site, started - datetime.timedelta(days=20))
    if enrolled:
        enrolment.enrolment_report(
            site=site, actor=actor, kind="enrolled", occurred_on=started + datetime.timedelta(days=10), count=enrolled
        )
    return trial


def policy_value(code: str, region):
    """The value a policy parameter row holds for a region (tests read numbers from the rows, never literals)."""
    return PolicyParameter.objects.get(code=code, region=region).value


# --- a claim walked through its workflow ---------------------------------------------------------------------------


def eligible_line(claim):
    return claim.lines.filter(status=ClaimLine.Status.ELIGIBLE).order_by("pk").first()


def run(claim, actor, step: str):
    """Take one step by its name in the table, with what that step needs."""
    if step == "recompute":
        return services.claim_recompute(claim=claim, actor=actor)
    if step == "change_lines":
        return services.line_exclude(line=eligible_line(claim) or claim.lines.first(), actor=actor, reason="no consent")
    if step == "submit":
        return services.claim_submit(claim=claim, actor=actor)
    if step == "discard":
        return services.claim_discard(claim=claim, actor=actor)
    if step == "start_review":
        return services.claim_start_review(claim=claim, actor=actor)
    if step in (services.APPROVE, services.REJECT):
        return services.claim_decide(claim=claim, actor=actor, decision=step, note="as reviewed")
    if step == services.PARTIAL:
        line = eligible_line(claim) or claim.lines.first()
        lowered = {line.pk: {"amount": str(line.amount_computed - 1), "reason": "one invoice missing"}}
        return services.claim_decide(claim=claim, actor=actor, decision=step, adjustments=lowered)
    if step in ("pay", "pay_part"):
        # The whole balance pays the claim; half of it leaves the claim partly paid.
        amount = claim.balance if claim.balance is not None else claim.amount_claimed
        if step == "pay_part":
            amount = (amount / 2).quantize(Decimal("0.01"))
        return services.claim_pay(claim=claim, actor=actor, amount=amount, paid_on=timezone.localdate())
    raise AssertionError(step)


def claim_in(status, claim, office, regulator):
    """The ``claim`` fixture (a draft) walked to a state through the services."""
    path = {
        Claim.Status.DRAFT: [],
        Claim.Status.SUBMITTED: ["submit"],
        Claim.Status.UNDER_REVIEW: ["submit", "start_review"],
        Claim.Status.APPROVED: ["submit", "start_review", services.APPROVE],
        Claim.Status.PARTIALLY_APPROVED: ["submit", "start_review", services.PARTIAL],
        Claim.Status.REJECTED: ["submit", "start_review", services.REJECT],
        Claim.Status.PARTIALLY_PAID: ["submit", "start_review", services.APPROVE, "pay_part"],
        Claim.Status.PAID: ["submit", "start_review", services.APPROVE, "pay"],
    }[status]
    for step in path:
        run(claim, office if step == "submit" else regulator, step)
        claim = Claim.objects.get(pk=claim.pk)
    return claim
