"""Regulator reports over subsidy claims: claims and amounts per program, institution and year with the room left
under the institution's yearly cap, and per project with the room left under the project cap (over all hospitals,
or per hospital, as the program's cap scope says).

Both read the rollups of ``subsidies.rollups`` (sums per program, hospital, year and status; per program, trial and
hospital), kept by the claim services in the transaction that writes a claim, so a report's cost follows the
region's hospitals and projects rather than its claim lines. They are scoped as ``Claim.visible_to`` scopes claims
(a regulator: submitted claims of the region's programs); drafts are the hospital's work in progress and are never
counted, also for a system administrator.
"""

import datetime
from decimal import Decimal

from django.db.models import Case, CharField, Count, DecimalField, F, IntegerField, Max, Q, Sum, Value, When
from django.db.models.functions import Cast, Coalesce, Greatest

from cgtclinic.reporting.policy import PolicyValues
from subsidies.models import Claim, ClaimYearTotal, ProjectClaimTotal, SubsidyProgram

C = Claim.Status
MONEY = DecimalField(max_digits=14, decimal_places=2)
ZERO = Value(Decimal("0.00"), output_field=MONEY)
CLAIM_STATUSES = tuple(status for status in C.values if status != C.DRAFT)


def _money_sum(expression, **extra):
    return Coalesce(Sum(expression, output_field=MONEY, **extra), ZERO, output_field=MONEY)


def year_totals_in_scope(*, viewer, program_id=None, institution_id=None, year=None):
    """The claims rollup rows (``subsidies.rollups``: submitted claims per program, hospital, year and status) the
    viewer sees, as ``Claim.visible_to`` scopes their claims."""
    totals = ClaimYearTotal.objects.visible_to(viewer)
    if program_id:
        totals = totals.filter(program_id=program_id)
    if institution_id:
        totals = totals.filter(claiming_institution_id=institution_id)
    if year:
        totals = totals.filter(year=year)
    return totals


def _count(field: str, **extra):
    return Coalesce(Sum(field, **extra), 0)


def claim_rows(*, totals, statuses=()):
    """Per program, institution and year: claims by status and amounts (of the chosen statuses), and what the
    year's counting claims take from the institution's yearly cap (whatever statuses are chosen)."""
    chosen = Q(status__in=statuses) if statuses else Q()
    return (
        totals.values(
            "program_id",
            "year",
            institution_id=F("claiming_institution_id"),
            program_code=F("program__code"),
            program_name=F("program__name_zh"),
            program_region_id=F("program__region_id"),
            cap_parameter=F("program__institution_year_cap_parameter"),
            institution_name=F("claiming_institution__name_zh"),
        )
        .annotate(
            counted_toward_cap=_money_sum("counted_rmb"),
            # Approved and not yet paid, over the chosen claims that are still payable (partly paid among them).
            amount_owed=_money_sum("owed_rmb", filter=chosen & Q(status__in=Claim.PAYABLE_STATUSES)),
            claims=_count("claim_count", filter=chosen),
            **{
                f"claims_{status}": _count("claim_count", filter=chosen & Q(status=status)) for status in CLAIM_STATUSES
            },
            amount_claimed=_money_sum("claimed_rmb", filter=chosen),
            amount_approved=_money_sum("approved_rmb", filter=chosen),
            amount_paid=_money_sum("paid_rmb", filter=chosen),
        )
        .order_by("program_code", "institution_name", "year")
    )


# The summary over claim_rows (named q), in the statement of the page (cgtclinic.api.reports.page_with_totals): sums
# of the groups' counts and amounts, and the institutions and programs with a chosen claim.
def _distinct_with_claims(column: str) -> str:
    return f"(SELECT COUNT(DISTINCT CASE WHEN claims > 0 THEN {column} END) FROM q)"


CLAIM_TOTALS = {
    "claims": "SUM(claims) OVER ()",
    **{f"claims_{status}": f"SUM(claims_{status}) OVER ()" for status in CLAIM_STATUSES},
    "amount_claimed": "SUM(amount_claimed) OVER ()",
    "amount_approved": "SUM(amount_approved) OVER ()",
    "amount_paid": "SUM(amount_paid) OVER ()",
    "amount_owed": "SUM(amount_owed) OVER ()",
    "institutions": _distinct_with_claims("institution_id"),
    "programs": _distinct_with_claims("program_id"),
}
CLAIM_EMPTY = {
    **dict.fromkeys(CLAIM_TOTALS, 0),
    **{name: Decimal("0.00") for name in ("amount_claimed", "amount_approved", "amount_paid", "amount_owed")},
}


def cap_values(*, viewer, field: str) -> PolicyValues:
    """The policy values of one kind of cap for the programs the viewer sees; one query."""
    return PolicyValues(SubsidyProgram.objects.visible_to(viewer).exclude(**{field: ""}).values(field))


def year_reference_date(year: int, today: datetime.date) -> datetime.date:
    """The day a claim of that year reads its policy values (as ``subsidies.services.reference_date``)."""
    return min(datetime.date(year, 12, 31), today)


def with_year_cap(row: dict, policy: PolicyValues, today: datetime.date) -> dict:
    code = row.pop("cap_parameter")
    region_id = row.pop("program_region_id")
    cap = policy.value(code, region_id=region_id, on=year_reference_date(row["year"], today)) if code else None
    row["institution_year_cap"] = cap
    row["room_under_institution_year_cap"] = max(cap - row["counted_toward_cap"], Decimal("0.00")) if cap else None
    return row


# --- projects ---------------------------------------------------------------------------------------------------


def _project_cap(policy: PolicyValues, today: datetime.date):
    """Each line's project cap in force today, from the program's policy value for its region (CASE in SQL)."""
    whens = []
    for code, rows in policy.rows.items():
        region_ids = {row.region_id for row in rows if row.region_id is not None}
        for region_id in sorted(region_ids):
            value = policy.value(code, region_id=region_id, on=today)
            if value is not None:
                whens.append(
                    When(
                        program__project_cap_parameter=code,
                        program__region_id=region_id,
                        then=Value(value, output_field=MONEY),
                    )
                )
        national = policy.value(code, region_id=None, on=today)
        if national is not None:
            whens.append(When(program__project_cap_parameter=code, then=Value(national, output_field=MONEY)))
    if not whens:
        return Cast(Value(None), MONEY)
    return Case(*whens, default=Cast(Value(None), MONEY), output_field=MONEY)


def _per_hospital():
    return Q(program__project_cap_scope=SubsidyProgram.ProjectCapScope.PROJECT_PER_HOSPITAL)


def project_rows(*, viewer, today: datetime.date, program_id=None, institution_id=None):
    """Per program and trial (project): the eligible lines of the counting claims (from their rollup,
    ``subsidies.rollups``), what they took, and the room left under the program's project cap in force today (null
    for a program without one).

    The cap's scope is the program's: a cap over the whole project (001 task 5, 每个项目资助总额) gives one row per
    project with every hospital's claims summed (institution empty, ``institutions`` counts them); a cap per
    hospital gives one row per project and hospital. Filtering by institution keeps the projects it claimed,
    still summed over every hospital when the cap covers the whole project."""
    totals = ProjectClaimTotal.objects.visible_to(viewer)
    if program_id:
        totals = totals.filter(program_id=program_id)
    policy = cap_values(viewer=viewer, field="project_cap_parameter")
    if institution_id:
        claimed_by_it = totals.filter(claiming_institution_id=institution_id).values("trial_id")
        totals = totals.filter(trial_id__in=claimed_by_it).filter(
            ~_per_hospital() | Q(claiming_institution_id=institution_id)
        )
    rows = (
        totals.annotate(
            line_cap=_project_cap(policy, today),
            cap_institution_id=Case(
                When(_per_hospital(), then=F("claiming_institution_id")), default=None, output_field=IntegerField()
            ),
            cap_institution_name=Case(
                When(_per_hospital(), then=F("claiming_institution__name_zh")),
                default=None,
                output_field=CharField(),
            ),
        )
        .values(
            "trial_id",
            "program_id",
            program_code=F("program__code"),
            cap_scope=F("program__project_cap_scope"),
            institution_id=F("cap_institution_id"),
            institution_name=F("cap_institution_name"),
            protocol_number=F("trial__protocol_number"),
        )
        .annotate(
            # One rollup row per hospital: the hospitals are the rows, and a claim is one hospital's.
            institutions=Count("claiming_institution_id"),
            claims=_count("claim_count"),
            # Not "patients_claimed": an annotation named like a column breaks aggregating over the groups.
            patients=_count("patient_count"),
            amount_counted=_money_sum("counted_rmb"),
            # One cap per program: any row of the group gives it.
            project_cap=Max("line_cap"),
        )
    )
    return rows.annotate(
        room_under_project_cap=Case(
            When(project_cap__isnull=True, then=Value(None)),
            default=Greatest(F("project_cap") - F("amount_counted"), ZERO),
            output_field=MONEY,
        )
    ).order_by("program_code", "protocol_number", "trial_id", "institution_name")


# The summary over project_rows, as window expressions over the grouped rows.
PROJECT_TOTALS = {
    "projects": "COUNT(*) OVER ()",
    "patients_claimed": "SUM(patients) OVER ()",
    "amount_counted": "SUM(amount_counted) OVER ()",
    "projects_with_cap": "COUNT(*) FILTER (WHERE project_cap IS NOT NULL) OVER ()",
    "projects_at_cap": "COUNT(*) FILTER (WHERE room_under_project_cap <= 0) OVER ()",
    "room_under_project_caps": "COALESCE(SUM(room_under_project_cap) OVER (), 0)",
}
PROJECT_EMPTY = {
    **dict.fromkeys(PROJECT_TOTALS, 0),
    **{name: Decimal("0.00") for name in ("amount_counted", "room_under_project_caps")},
}
