"""Regulator reports over trials, sites and the enrolment ledger, aggregated in the database.

Each function takes the ``viewer`` whose ``visible_to`` scopes the rows (a regulator, a system administrator, or
a stand-in regulator of the region a system administrator asked for) and returns ordered ``values()`` querysets
(start-up time: one SQL statement over the scoped sites) and summary dicts; the views in ``trials.api.reports``
page and render them. The pipeline, start-up and current enrolment figures read the per-site rollup
(``SiteRollup``, kept by ``trials.rollups``) and the sites' running totals (``SiteEnrolment``), never a join of
every site to its trial and institution; enrolment over a period reads the ledger by its date index.
"""

import datetime

from django.db.models import (
    Case,
    CharField,
    Count,
    DateField,
    F,
    IntegerField,
    Max,
    Q,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce

from cgtclinic.models import PolicyTarget
from cgtclinic.reporting.policy import PolicyValues
from cgtclinic.reporting.sql import (
    MonthStart,
    compiled_sql,
    date_range,
    day_range,
    fetch_dicts,
    reporting_connection,
    rounded,
    share,
    sql_days,
    sql_percentile,
    start_of_day,
    viewer_key,
)
from cgtclinic.roles import Role
from trials.models import EnrolmentEntry, FilingObligation, SiteEnrolmentMonth, SiteRollup, Trial, TrialSite
from trials.rollups import STAGES

S = Trial.Status
K = EnrolmentEntry.Kind

# --- pipeline ---------------------------------------------------------------------------------------------------

PIPELINE_GROUPS = {
    "status": "trial_status",
    "kind": "trial_kind",
    "therapy_category": "therapy_category",
    "institution": "institution_id",
}
PIPELINE_DEFAULT_GROUPS = ("status", "kind", "therapy_category")


def _trial_filters(*, statuses=(), kinds=(), categories=()) -> Q:
    condition = Q()
    if statuses:
        condition &= Q(trial_status__in=statuses)
    if kinds:
        condition &= Q(trial_kind__in=kinds)
    if categories:
        condition &= Q(therapy_category__in=categories)
    return condition


def distinct_trials(viewer, *, one_institution: bool = False) -> Count:
    """Distinct trials among rollup rows scoped by ``SiteRollup.visible_to(viewer)`` (and trial-level filters): a
    trial has one site per institution, one flagged row per region and one flagged row in all, so each count is a
    plain count; a viewer with another scope (not a whole region nor everything) needs the distinct count."""
    if one_institution:
        return Count("pk")
    if viewer.is_superuser:
        return Count("pk", filter=Q(first_in_trial=True))
    if viewer.role == Role.REGULATOR:
        return Count("pk", filter=Q(first_in_region=True))
    return Count("trial_id", distinct=True)


def pipeline_sites(
    *,
    viewer,
    statuses=(),
    kinds=(),
    categories=(),
    institution_id: int | None = None,
    registered_from: datetime.date | None = None,
    registered_to: datetime.date | None = None,
):
    """The sites a regulator's pipeline counts: sites in the region (a region's pipeline is the trials taking
    place there), of trials matching the filters, registered in the period."""
    sites = SiteRollup.objects.visible_to(viewer).filter(
        _trial_filters(statuses=statuses, kinds=kinds, categories=categories),
        day_range("trial_created_at", registered_from, registered_to),
    )
    if institution_id:
        sites = sites.filter(institution_id=institution_id)
    return sites


def pipeline(*, sites, trials: Count, group_by=PIPELINE_DEFAULT_GROUPS):
    """Trials and sites per lifecycle stage, kind, therapy category and (site) institution; one query. ``trials``
    counts distinct trials (``distinct_trials``; per institution when grouped by it)."""
    keys = {name: F(PIPELINE_GROUPS[name]) for name in group_by if name not in ("institution", "therapy_category")}
    plain = ["therapy_category"] if "therapy_category" in group_by else []
    by_institution = "institution" in group_by
    if by_institution:
        plain += ["institution_id", "institution_name"]
    order = [name for name in group_by if name != "institution"] + (["institution_id"] if by_institution else [])
    return (
        sites.values(*plain, **keys)
        .annotate(
            trials=Count("pk") if by_institution else trials,
            sites=Count("pk"),
            lead_sites=Count("pk", filter=Q(role=TrialSite.SiteRole.LEAD)),
            sites_ethics_approved=Count("ethics_approved_on"),
            sites_contract_signed=Count("contract_signed_on"),
            sites_initiated=Count("site_initiated_on"),
            sites_first_patient_in=Count("first_patient_in_on"),
        )
        .order_by(*order)
    )


def pipeline_summary(*, sites, trials: Count) -> dict:
    return sites.aggregate(
        trials=trials,
        sites=Count("pk"),
        institutions=Count("institution_id", distinct=True),
        sites_initiated=Count("site_initiated_on"),
        sites_first_patient_in=Count("first_patient_in_on"),
    )


# --- start-up ---------------------------------------------------------------------------------------------------

STARTUP_TARGET_CODE = "startup_target_weeks"


def startup_sites(
    *,
    viewer,
    submitted_from: datetime.date | None = None,
    submitted_to: datetime.date | None = None,
    institution_id: int | None = None,
    kinds=(),
    categories=(),
):
    """The region's sites whose start-up began (submission received), filtered."""
    sites = SiteRollup.objects.visible_to(viewer).filter(
        date_range("submission_received_on", submitted_from, submitted_to),
        _trial_filters(kinds=kinds, categories=categories),
        submission_received_on__isnull=False,
    )
    if institution_id:
        sites = sites.filter(institution_id=institution_id)
    return sites


def _target_case(policy: PolicyValues, target_weeks: int | None) -> tuple[str, list]:
    """SQL for each site's start-up target in weeks: the one given, else its region's policy value in force on the
    day its start-up began (the submission), else the national one."""
    if target_weeks:
        return "%s", [float(target_weeks)]
    whens, params = [], []
    rows = policy.rows.get(STARTUP_TARGET_CODE, [])
    for regional in (True, False):
        for row in rows:
            if (row.region_id is not None) != regional:
                continue
            condition = "r.submission_received_on >= %s"
            params.append(row.effective_from)
            if row.effective_to:
                condition += " AND r.submission_received_on <= %s"
                params.append(row.effective_to)
            if regional:
                condition += " AND r.region_id = %s"
                params.append(row.region_id)
            whens.append(f"WHEN {condition} THEN %s")
            params.append(float(row.value))
    if not whens:
        return "CAST(NULL AS FLOAT)", []
    return f"CASE {' '.join(whens)} END", params


STARTUP_COLUMNS = (
    "site_id",
    "trial_id",
    "protocol_number",
    "trial_status",
    "institution_id",
    "institution_name",
    "role",
    "region_id",
    "submission_received_on",
    "ethics_approved_on",
    "contract_signed_on",
    "site_initiated_on",
    "first_patient_in_on",
    "startup_days",
    "days_to_first_patient",
    *(f"{stage}_days" for stage in STAGES),
    "stage_started_on",
    "current_stage",
    "longest_done_days",
    "slowest_done_stage",
)


def startup_sites_sql(sites, *, today: datetime.date, target_weeks: int | None) -> tuple[str, list]:
    """One row per site of ``sites`` (rollup rows scoped by ``visible_to``): the rollup's columns with the target
    the site is measured against, the days its stage under way has run (``elapsed``) and the slowest stage.

    Each stage is charged the days from the latest milestone recorded before it to its own, so a skipped
    milestone's time is not lost: the rollup keeps the days of the stages that ended, the stage under way and the
    longest stage that ended; only what depends on today and on the policy values is computed here. The slowest
    stage is the longest that ended unless the stage under way has run longer (ties go to the earlier stage)."""
    scope_sql, scope_params = sites.order_by().values(*STARTUP_COLUMNS).query.sql_with_params()
    target_sql, target_params = _target_case(PolicyValues([STARTUP_TARGET_CODE]), target_weeks)
    sql = f"""
        SELECT e.*,
               CASE WHEN e.current_stage IS NOT NULL AND e.elapsed > e.longest_done_days THEN e.current_stage
                    ELSE e.slowest_done_stage END AS slowest_stage
        FROM (
            SELECT r.*, {target_sql} AS target_weeks, {sql_days("%s", "r.stage_started_on")} AS elapsed
            FROM ({scope_sql}) r
        ) e
    """
    return sql, [*target_params, today, *scope_params]


def startup_report(sites_sql: tuple[str, list]) -> tuple[str, list]:
    """A ``WITH report AS (…)`` prefix whose ``report`` has one row per site: the milestones, start-up days and
    days to first patient, the target and whether the site met it, the days spent in each stage (a stage under way
    counts until today), the stage it is in now and the one where most time went, over ``startup_sites_sql``."""
    sites_sql, params = sites_sql
    spent = ", ".join(
        f"COALESCE({stage}_days, CASE WHEN current_stage = '{stage}' THEN elapsed END) AS spent_{stage}_days"
        for stage in STAGES
    )
    sql = f"""
        WITH report AS (
            SELECT site_id, trial_id, protocol_number, trial_status, institution_id, institution_name,
                   role AS site_role, submission_received_on, ethics_approved_on, contract_signed_on,
                   site_initiated_on, first_patient_in_on, startup_days, days_to_first_patient, target_weeks,
                   CASE WHEN startup_days IS NULL OR target_weeks IS NULL THEN NULL
                        ELSE startup_days <= target_weeks * 7 END AS within_target,
                   {spent}, current_stage, slowest_stage
            FROM ({sites_sql}) s
        )
    """
    return sql, params


STARTUP_ROW_FIELDS = (
    "site_id",
    "trial_id",
    "protocol_number",
    "trial_status",
    "institution_id",
    "institution_name",
    "site_role",
    "submission_received_on",
    "ethics_approved_on",
    "contract_signed_on",
    "site_initiated_on",
    "first_patient_in_on",
    "startup_days",
    "days_to_first_patient",
    "target_weeks",
    "within_target",
    "ethics_days",
    "contract_days",
    "initiation_days",
    "first_patient_days",
    "current_stage",
    "slowest_stage",
)


def startup_rows(report: tuple[str, list], offset: int, limit: int) -> list[dict]:
    sql, params = report
    spent = {f"{stage}_days" for stage in STAGES}
    fields = [f"spent_{name} AS {name}" if name in spent else name for name in STARTUP_ROW_FIELDS]
    rows = fetch_dicts(
        f"{sql} SELECT {', '.join(fields)} FROM report "
        "ORDER BY institution_name, protocol_number, site_id LIMIT %s OFFSET %s",
        [*params, limit, offset],
    )
    for row in rows:
        if row["within_target"] is not None:
            row["within_target"] = bool(row["within_target"])
    return rows


def startup_summary(sites_sql: tuple[str, list]) -> dict:
    """Medians and 90th percentiles, the share of initiated sites within their target, and where time went: one
    pass over the sites' rollup rows (``startup_sites_sql``)."""
    sql, params = sites_sql
    pct = sql_percentile
    figures = [
        "COUNT(*) AS sites",
        "COUNT(startup_days) AS sites_initiated",
        "COUNT(days_to_first_patient) AS sites_first_patient_in",
        "COUNT(current_stage) AS sites_waiting",
        f"{pct('startup_days', 0.5)} AS median_startup_days",
        f"{pct('startup_days', 0.9)} AS p90_startup_days",
        f"{pct('days_to_first_patient', 0.5)} AS median_days_to_first_patient",
        f"{pct('days_to_first_patient', 0.9)} AS p90_days_to_first_patient",
        "COUNT(*) FILTER (WHERE startup_days IS NOT NULL AND target_weeks IS NOT NULL) AS sites_with_target",
        "COUNT(*) FILTER (WHERE startup_days <= target_weeks * 7) AS sites_within_target",
        *(f"{pct(f'{stage}_days', 0.5)} AS median_{stage}_days" for stage in STAGES),
        *(f"COUNT(*) FILTER (WHERE slowest_stage = '{stage}') AS slowest_{stage}" for stage in STAGES),
    ]
    (totals,) = fetch_dicts(f"SELECT {', '.join(figures)} FROM ({sql}) s", params)
    for name in list(totals):
        if name.startswith(("median_", "p90_")):
            totals[name] = rounded(totals[name])
    totals["within_target_share"] = share(totals["sites_within_target"], totals["sites_with_target"])
    medians = {stage: totals[f"median_{stage}_days"] for stage in STAGES if totals[f"median_{stage}_days"] is not None}
    totals["slowest_stage"] = max(medians, key=medians.get) if medians else None
    return totals


# --- enrolment --------------------------------------------------------------------------------------------------

ENROLMENT_GROUPS = ("trial", "site", "institution", "month")
COUNTS = tuple(K.values)


def _signed():
    """An entry's count, negative for a correction (it cancels the entry it reverses)."""
    return Case(When(reverses__isnull=False, then=-F("count")), default=F("count"), output_field=IntegerField())


def _month_start(day: datetime.date) -> datetime.date:
    return day.replace(day=1)


def _next_month(day: datetime.date) -> datetime.date:
    return (day.replace(day=1) + datetime.timedelta(days=32)).replace(day=1)


def split_period(occurred_from=None, occurred_to=None):
    """The whole calendar months inside a period of days, as (first, last) month starts (None: unbounded; None for
    the pair when the period holds no whole month), and the days outside them, as (from, to) ranges, at most two."""
    first = None if occurred_from is None else _month_start(occurred_from)
    if occurred_from is not None and occurred_from.day != 1:
        first = _next_month(occurred_from)
    last = None
    if occurred_to is not None:
        ends_month = _next_month(occurred_to) - datetime.timedelta(days=1) == occurred_to
        last = (
            _month_start(occurred_to)
            if ends_month
            else _month_start(_month_start(occurred_to) - datetime.timedelta(days=1))
        )
    if first is not None and last is not None and first > last:
        return None, [(occurred_from, occurred_to)]
    edges = []
    if first is not None and occurred_from < first:
        edges.append((occurred_from, first - datetime.timedelta(days=1)))
    if last is not None and occurred_to >= _next_month(last):
        edges.append((_next_month(last), occurred_to))
    return (first, last), edges


# The same names on the ledger and on its month rollup.
PERIOD_KEYS = {"trial": "trial_id", "site": "site_id", "institution": "site__institution_id"}


def _period_sql(*, sites, occurred_from, occurred_to, by: str | None, keys, by_month: bool) -> tuple[str, list]:
    """Net counts per event and the latest enrolment day of the sites' ledger events in a period, grouped by key
    (trial, site, institution or none) and optionally by month: the whole months from the per-site month rollup
    (``SiteEnrolmentMonth``), the days of the partial months at the period's edges from the ledger by its date
    index, summed together in one statement. Only groups with ledger entries have a row, as in the ledger."""
    scope = sites.order_by().values("pk")
    months, edges = split_period(occurred_from, occurred_to)
    parts = []
    if months is not None:
        rollup = SiteEnrolmentMonth.objects.filter(site__in=scope)
        if months[0] is not None:
            rollup = rollup.filter(month__gte=months[0])
        if months[1] is not None:
            rollup = rollup.filter(month__lte=months[1])
        columns = {
            "g_key": F(PERIOD_KEYS[by]) if by else Value(0),
            "g_month": F("month") if by_month else Value(None, output_field=DateField()),
            **{f"n_{kind}": F(kind) for kind in COUNTS},
            "g_last": F("last_enrolled_on"),
        }
        parts.append(rollup.order_by().annotate(**columns).values(*columns))
    if edges:
        days = Q()
        for start, end in edges:
            days |= date_range("occurred_on", start, end)
        ledger = EnrolmentEntry.objects.filter(days, site__in=scope)
        columns = {
            "g_key": F(PERIOD_KEYS[by]) if by else Value(0),
            "g_month": MonthStart("occurred_on") if by_month else Value(None, output_field=DateField()),
            **{
                f"n_{kind}": Case(When(kind=kind, then=_signed()), default=Value(0), output_field=IntegerField())
                for kind in COUNTS
            },
            "g_last": Case(When(kind=K.ENROLLED, then=F("occurred_on")), output_field=DateField()),
        }
        parts.append(ledger.order_by().annotate(**columns).values(*columns))
    if keys is not None:
        parts = [part.filter(g_key__in=keys) for part in parts]
    compiled = [part.query.sql_with_params() for part in parts]
    union = " UNION ALL ".join(f"({sql})" for sql, _params in compiled)
    sums = ", ".join(f"SUM(u.n_{kind}) AS {kind}" for kind in COUNTS)
    sql = (
        f"SELECT u.g_key AS key, u.g_month AS month, {sums}, MAX(u.g_last) AS last_enrolled_on "
        f"FROM ({union}) u GROUP BY u.g_key, u.g_month ORDER BY u.g_month, u.g_key"
    )
    return sql, [param for _sql, params in compiled for param in params]


def period_counts(*, sites, occurred_from=None, occurred_to=None, by: str | None = None, keys=None) -> dict:
    """Net counts per event kind, {key: {kind: n, "last_enrolled_on": day}} per trial, site or institution (or
    {None: ...} over all) of the sites' ledger events in a period, optionally only for some keys. One query."""
    if keys is not None and not keys:
        return {}
    sql, params = _period_sql(
        sites=sites, occurred_from=occurred_from, occurred_to=occurred_to, by=by, keys=keys, by_month=False
    )
    return {
        row["key"] if by else None: {
            **{kind: row[kind] or 0 for kind in COUNTS},
            "last_enrolled_on": _as_date(row["last_enrolled_on"]),
        }
        for row in fetch_dicts(sql, params)
    }


def period_months(*, sites, occurred_from=None, occurred_to=None) -> list[dict]:
    """Net counts per calendar month of the event date, oldest first (one row per month with events). One query."""
    sql, params = _period_sql(
        sites=sites, occurred_from=occurred_from, occurred_to=occurred_to, by=None, keys=None, by_month=True
    )
    return [
        {"month": _as_date(row["month"]), **{kind: row[kind] or 0 for kind in COUNTS}}
        for row in fetch_dicts(sql, params)
    ]


def _as_date(value) -> datetime.date | None:
    # SQLite (``make run``'s default) hands dates back as ISO text from plain SQL.
    return datetime.date.fromisoformat(value) if isinstance(value, str) else value


def no_counts() -> dict:
    return {**dict.fromkeys(COUNTS, 0), "last_enrolled_on": None}


def enrolment_sites(*, viewer, institution_id=None, trial_id=None, kinds=(), categories=()):
    sites = SiteRollup.objects.visible_to(viewer).filter(_trial_filters(kinds=kinds, categories=categories))
    if institution_id:
        sites = sites.filter(institution_id=institution_id)
    if trial_id:
        sites = sites.filter(trial_id=trial_id)
    return sites


def enrolment_groups(*, sites, group_by: str, with_counts: bool):
    """One row per trial, site or institution of the region's sites, with the sites' targets, and (with_counts)
    the current counts kept with the ledger (``SiteEnrolment``); ordered, for paging."""
    plain, keys, extra, order = {
        "trial": (
            ["trial_id", "protocol_number"],
            {},
            {"trial_target": Max("trial_target")},
            ("protocol_number", "trial_id"),
        ),
        "site": (
            ["trial_id", "institution_id", "site_id", "protocol_number", "institution_name", "trial_target"],
            {},
            {},
            ("protocol_number", "institution_name", "site_id"),
        ),
        "institution": (
            ["institution_id", "institution_name"],
            {},
            {},
            ("institution_name", "institution_id"),
        ),
    }[group_by]
    if with_counts:
        extra.update({kind: Sum(kind) for kind in COUNTS})
        extra["last_enrolled_on"] = Max("last_enrolled_on")
    return (
        sites.values(*plain, **keys)
        .annotate(sites=Count("pk"), site_target=Coalesce(Sum("site_target"), 0), **extra)
        .order_by(*order)
    )


def enrolment_targets(*, sites, trials: Count) -> dict:
    """The sites' number, trials (``distinct_trials``), institutions and summed targets."""
    return sites.aggregate(
        sites=Count("pk"),
        trials=trials,
        institutions=Count("institution_id", distinct=True),
        site_target=Coalesce(Sum("site_target"), 0),
    )


def enrolment_current_summary(*, sites, trials: Count) -> dict:
    """Targets and the current counts kept with the ledger (``SiteEnrolment``) of the sites, in one query."""
    return sites.aggregate(
        sites=Count("pk"),
        trials=trials,
        institutions=Count("institution_id", distinct=True),
        site_target=Coalesce(Sum("site_target"), 0),
        **{kind: Coalesce(Sum(kind), 0) for kind in COUNTS},
    )


def add_counts(total: dict, counts: dict) -> dict:
    for kind in COUNTS:
        total[kind] = total.get(kind, 0) + counts.get(kind, 0)
    return total


def with_progress(row: dict) -> dict:
    row["on_study"] = row[K.ENROLLED] - row[K.WITHDRAWN] - row[K.COMPLETED]
    target = row.get("site_target")
    row["percent_of_target"] = rounded(row[K.ENROLLED] * 100 / target) if target else None
    return row


# --- policy targets ---------------------------------------------------------------------------------------------


def target_period(target: PolicyTarget) -> tuple[datetime.date, datetime.date]:
    return target.period_start, datetime.date(target.deadline_year, 12, 31)


def counted_events(*, viewer, region_ids: tuple[int, ...]):
    """What the targets count, one row per event with its region, metric and day: each NMPA clinical-trial approval
    (批件) or implied permission (默示许可) by its date (Trial.nmpa_approved_on), and each biomedical new-technology
    clinical research filing (临床备案) by its filing date. Trials led by the regions' institutions, visible to the
    viewer. Never the lifecycle step "approved", which is the institution's, not the regulator's."""
    visible = Trial.objects.visible_to(viewer).filter(lead_institution__region_id__in=region_ids)
    approvals = (
        visible.filter(nmpa_approved_on__isnull=False)
        .annotate(
            region=F("lead_institution__region_id"),
            day=F("nmpa_approved_on"),
            metric=Value(PolicyTarget.Metric.NEW_TRIAL_APPROVALS.value, output_field=CharField()),
        )
        .values("region", "day", "metric")
        .order_by()
    )
    filings = (
        FilingObligation.objects.filter(
            trial__in=visible.values("pk"),
            kind=FilingObligation.Kind.NEW_TECHNOLOGY,
            status=FilingObligation.Status.FILED,
        )
        .annotate(
            region=F("trial__lead_institution__region_id"),
            day=F("filed_on"),
            metric=Value(PolicyTarget.Metric.NEW_CLINICAL_FILINGS.value, output_field=CharField()),
        )
        .values("region", "day", "metric")
        .order_by()
    )
    return approvals.union(filings, all=True)


def policy_targets(*, viewer, region_id: int | None, today: datetime.date) -> list[dict]:
    """Each region's targets against the approvals and filings counted so far; two queries whatever the number of
    targets."""
    targets = PolicyTarget.objects.select_related("region").order_by("region__code", "deadline_year", "metric")
    if region_id is not None:
        targets = targets.filter(region_id=region_id)
    targets = list(targets)
    if not targets:
        return []
    region_ids = tuple(sorted({t.region_id for t in targets}))

    def events():
        return counted_events(viewer=viewer, region_ids=region_ids).query.sql_with_params()

    events_sql, events_params = compiled_sql(("policy_targets_events", viewer_key(viewer), region_ids), events)
    counts, params = [], []
    adapt = reporting_connection().ops.adapt_datefield_value
    for target in targets:
        start, end = target_period(target)
        counts.append(
            f'COUNT(*) FILTER (WHERE region = %s AND metric = %s AND day >= %s AND day <= %s) AS "target_{target.pk}"'
        )
        params += [target.region_id, target.metric, adapt(start), adapt(end)]
    (achieved,) = fetch_dicts(f"SELECT {', '.join(counts)} FROM ({events_sql}) events", (*params, *events_params))
    rows = []
    for target in targets:
        start, end = target_period(target)
        value = achieved[f"target_{target.pk}"]
        period_days = (end - start).days + 1
        elapsed_days = min(max((today - start).days + 1, 0), period_days)
        expected = round(target.target_value * elapsed_days / period_days, 1)
        rows.append(
            {
                "region_code": target.region.code,
                "region_name": target.region.name_zh,
                "metric": target.metric,
                "target_value": target.target_value,
                "period_start": start,
                "period_end": end,
                "deadline_year": target.deadline_year,
                "achieved": value,
                "remaining": max(target.target_value - value, 0),
                "percent_achieved": rounded(value * 100 / target.target_value) if target.target_value else None,
                "expected_by_now": expected,
                "on_track": value >= expected,
                "met": value >= target.target_value,
                "days_left": max((end - today).days, 0),
                "source_document": target.source_document,
                "source_clause": target.source_clause,
            }
        )
    return rows


# --- research filings -------------------------------------------------------------------------------------------


def filing_obligations(*, viewer, due_from=None, due_to=None, institution_id=None, kinds=()):
    """The filings owed by trials led in the viewer's scope (a regulator: led by its region's institutions), whose
    deadline falls in the period (Beijing days); filings no longer due are left out."""
    rows = FilingObligation.objects.exclude(status=FilingObligation.Status.CANCELLED)
    if viewer.is_active and not viewer.is_superuser and viewer.role == Role.REGULATOR:
        # Led by the region's institutions: part of what the regulator sees (Trial.visible_to), so that wider
        # semi-join over every trial of the country (110 ms at national scale) is not run as well.
        rows = rows.filter(trial__lead_institution__region_id=viewer.region_id)
    else:
        rows = rows.visible_to(viewer)
    # A deadline is 24:00 of its last day (the next day's first moment): it belongs to the day that ends then.
    if due_from:
        rows = rows.filter(due_at__gt=start_of_day(due_from))
    if due_to:
        rows = rows.filter(due_at__lte=start_of_day(due_to + datetime.timedelta(days=1)))
    if institution_id:
        rows = rows.filter(trial__lead_institution_id=institution_id)
    if kinds:
        rows = rows.filter(kind__in=kinds)
    return rows


def filing_counts(now: datetime.datetime) -> dict:
    filed, open_ = FilingObligation.Status.FILED, FilingObligation.Status.OPEN
    return {
        "due": Count("pk"),
        "filed_on_time": Count("pk", filter=Q(status=filed, late=False)),
        "filed_late": Count("pk", filter=Q(status=filed, late=True)),
        "overdue": Count("pk", filter=Q(status=open_, due_at__lte=now)),
        "open": Count("pk", filter=Q(status=open_, due_at__gt=now)),
    }


def filings_by_institution(obligations, *, now: datetime.datetime):
    """Per lead institution: filings due in the period, filed on time, filed late, overdue (open past the
    deadline) and open (not yet due). One statement."""
    return (
        obligations.values(
            institution_id=F("trial__lead_institution_id"), institution_name=F("trial__lead_institution__name_zh")
        )
        .annotate(**filing_counts(now))
        .order_by("institution_name", "institution_id")
    )


def filings_summary(obligations, *, now: datetime.datetime) -> dict:
    return obligations.aggregate(**filing_counts(now))
