"""Regulator reports over ethics review: mutual-recognition timeliness (with the overdue requests), review turnaround,
and the timeliness of safety reporting (per institution or trial and per clock).

Recognition requests are scoped by ``RecognitionRequest.visible_to`` (a regulator: requests to committees of
the region). Submissions have no regulator scope (regulators never see one), so the turnaround report filters
them by the committee's region here, and returns only aggregates.

Both read the facts of ``ethics.rollups`` (one narrow row per decided or in-review submission, per answered
request), which the services write with the raw rows; only the open recognition requests, whose figures depend on
the moment of the report, are read from the requests themselves.
"""

import datetime
from decimal import Decimal

from django.db.models import Avg, Count, F, Max, Q, Window
from django.utils import timezone

from cgtclinic.models import Institution
from cgtclinic.reporting.sql import (
    PercentileCont,
    day_range,
    fetch_dicts,
    groups_and_total,
    rounded,
    share,
    sql_percentile,
    vendor,
)
from ethics.models import (
    Alliance,
    RecognitionAnswerFact,
    RecognitionRequest,
    SafetyClock,
    Submission,
    TurnaroundFact,
)
from ethics.selectors import R
from trials.models import Trial


def recognition_requests(
    *,
    viewer,
    received_from: datetime.date | None = None,
    received_to: datetime.date | None = None,
    alliance_id: int | None = None,
    institution_id: int | None = None,
):
    requests = RecognitionRequest.objects.visible_to(viewer).filter(
        day_range("received_at", received_from, received_to)
    )
    if alliance_id:
        requests = requests.filter(alliance_id=alliance_id)
    if institution_id:
        requests = requests.filter(committee__institution_id=institution_id)
    return requests


def answer_facts(
    *,
    viewer,
    received_from: datetime.date | None = None,
    received_to: datetime.date | None = None,
    alliance_id: int | None = None,
    institution_id: int | None = None,
):
    """The answered requests of ``recognition_requests`` (same viewer and filters), as their facts
    (``ethics.rollups``)."""
    facts = RecognitionAnswerFact.objects.visible_to(viewer).filter(
        day_range("received_at", received_from, received_to)
    )
    if alliance_id:
        facts = facts.filter(alliance_id=alliance_id)
    if institution_id:
        facts = facts.filter(institution_id=institution_id)
    return facts


TOTAL_FIGURES = ("received", "answered_on_time", "answered_late", "open", "overdue")
# The group's key on an answer fact and on a request, and the table naming it.
TIMELINESS_KEYS = {
    "alliance": ("alliance_id", "alliance_id", Alliance),
    "institution": ("institution_id", "committee__institution_id", Institution),
}


def _timeliness_sql(*, facts, requests, by: str | None, now: datetime.datetime, total: bool) -> tuple[str, list]:
    """One statement over the answered requests' facts and the open requests (the only ones whose figures depend
    on ``now``, read from the partial index of open requests): per group (``by``), with their total when ``total``
    (GROUPING SETS), or only the total (``by`` None). The facts are aggregated on their own, straight from their
    index (in group and working-hours order), and the few open requests apart; the two meet by group."""
    fact_key, request_key, named = TIMELINESS_KEYS[by or "alliance"]
    answered_sql, answered_params = (
        facts.order_by().values("late", "response_working_hours", group_id=F(fact_key)).query.sql_with_params()
    )
    open_sql, open_params = (
        requests.filter(status=R.OPEN).order_by().values("due_at", group_id=F(request_key)).query.sql_with_params()
    )

    def grouped(alias: str) -> tuple[str, str]:
        if by is None:
            return "CAST(NULL AS integer)", ""
        if total:
            return f"{alias}.group_id", f"GROUP BY GROUPING SETS (({alias}.group_id), ())"
        return f"{alias}.group_id", f"GROUP BY {alias}.group_id"

    (answered_key, answered_grouping), (open_key, open_grouping) = grouped("a"), grouped("o")
    hours = "a.response_working_hours"
    statement = f"""
        WITH answered AS (
            SELECT {answered_key} AS group_id, COUNT(*) AS answered,
                   COUNT(*) FILTER (WHERE NOT a.late) AS answered_on_time,
                   COUNT(*) FILTER (WHERE a.late) AS answered_late,
                   {sql_percentile(hours, 0.5)} AS median_working_hours,
                   {sql_percentile(hours, 0.9)} AS p90_working_hours
            FROM ({answered_sql}) a {answered_grouping}
        ), still_open AS (
            SELECT {open_key} AS group_id, COUNT(*) FILTER (WHERE o.due_at > %s) AS open,
                   COUNT(*) FILTER (WHERE o.due_at <= %s) AS overdue
            FROM ({open_sql}) o {open_grouping}
        )
        SELECT COALESCE(a.group_id, o.group_id) AS group_id, n.name_zh AS group_name,
               COALESCE(a.answered, 0) + COALESCE(o.open, 0) + COALESCE(o.overdue, 0) AS received,
               COALESCE(a.answered_on_time, 0) AS answered_on_time, COALESCE(a.answered_late, 0) AS answered_late,
               COALESCE(o.open, 0) AS open, COALESCE(o.overdue, 0) AS overdue,
               a.median_working_hours, a.p90_working_hours
        FROM answered a
        FULL JOIN still_open o ON COALESCE(a.group_id, 0) = COALESCE(o.group_id, 0)
        LEFT JOIN {named._meta.db_table} n ON n.id = COALESCE(a.group_id, o.group_id)
        ORDER BY n.name_zh, 1
    """
    return statement, [*answered_params, now, now, *open_params]


def _hours(row: dict) -> dict:
    """Working hours to two places, from the float the database computed (as the groups have always been shown)."""
    for name in ("median_working_hours", "p90_working_hours"):
        if row[name] is not None:
            row[name] = Decimal(row[name]).quantize(Decimal("0.01"))
    return row


def timeliness(*, facts, requests, by: str, now: datetime.datetime) -> tuple[list[dict], dict]:
    """The groups (per alliance or per participating institution) and the same figures over every request in scope,
    in one statement where the database has GROUPING SETS (else two)."""
    together = vendor() == "postgresql"
    statement, params = _timeliness_sql(facts=facts, requests=requests, by=by, now=now, total=together)
    groups, total = [], None
    for row in fetch_dicts(statement, params):
        if row["group_id"] is None:
            total = row
        else:
            groups.append(_hours(row))
    if not together:
        total = timeliness_summary(facts=facts, requests=requests, now=now)
    else:
        total = summary_of(total or dict.fromkeys(TOTAL_FIGURES, 0))
    rows = []
    for row in groups:
        row["group"] = by
        row["on_time_share"] = share(row["answered_on_time"], row["answered_on_time"] + row["answered_late"])
        rows.append(row)
    return rows, total


def timeliness_summary(*, facts, requests, now: datetime.datetime) -> dict:
    """The figures over every request in scope (withdrawn and superseded requests do not count), on its own."""
    statement, params = _timeliness_sql(facts=facts, requests=requests, by=None, now=now, total=True)
    (totals,) = fetch_dicts(statement, params)
    return summary_of(totals)


def summary_of(totals: dict) -> dict:
    summary = {name: totals[name] for name in TOTAL_FIGURES}
    summary["on_time_share"] = share(
        summary["answered_on_time"], summary["answered_on_time"] + summary["answered_late"]
    )
    summary["median_working_hours"] = rounded(totals.get("median_working_hours"), 2)
    summary["p90_working_hours"] = rounded(totals.get("p90_working_hours"), 2)
    return summary


def overdue_requests(*, requests, now: datetime.datetime):
    """Open requests past their deadline, the longest overdue first."""
    return (
        requests.filter(status=R.OPEN, due_at__lte=now)
        .values(
            "trial_id",
            "site_id",
            "alliance_id",
            "subject",
            "received_at",
            "due_at",
            "escalated_at",
            "provisional",
            request_id=F("pk"),
            protocol_number=F("trial__protocol_number"),
            trial_title=F("trial__title_zh"),
            institution_id=F("committee__institution_id"),
            institution_name=F("committee__institution__name_zh"),
            committee_name=F("committee__name_zh"),
            alliance_name=F("alliance__name_zh"),
        )
        .order_by("due_at", "pk")
    )


def overdue_page(*, requests, now: datetime.datetime, offset: int, limit: int) -> tuple[int, list[dict]]:
    """How many requests are overdue in all, and one page of them (longest overdue first), in one statement."""
    listed = overdue_requests(requests=requests, now=now).annotate(_in_all=Window(Count("*")))
    page = list(listed[offset : offset + limit])
    # Past the end only, the count takes a statement of its own (an empty first page: nothing is overdue).
    count = page[0]["_in_all"] if page else (overdue_requests(requests=requests, now=now).count() if offset else 0)
    for row in page:
        del row["_in_all"]
        row["overdue_days"] = round((now - row["due_at"]).total_seconds() / 86400, 1)
        for name in ("received_at", "due_at", "escalated_at"):
            if row[name] is not None:
                row[name] = timezone.localtime(row[name])
    return count, page


# --- ethics review turnaround -----------------------------------------------------------------------------------

IN_REVIEW = (Submission.Status.EXPEDITED_REVIEW, Submission.Status.AWAITING_MEETING)
TURNAROUND_GROUPS = {"kind": "kind", "institution": "committee__institution_id"}


def turnaround_facts(*, user, region_id: int | None):
    """The turnaround facts (``ethics.rollups``: one row per decided or in-review submission) of a region's
    committees (all regions for a system administrator without one). Regulators see no single submission
    (``Submission.visible_to``), so the region is applied here, for aggregates only."""
    return TurnaroundFact.objects.in_region(user=user, region_id=region_id)


def turnaround(
    *,
    facts,
    group_by=(),
    decided_from: datetime.date | None = None,
    decided_to: datetime.date | None = None,
    kinds=(),
    institution_id: int | None = None,
):
    """Received (first submitted) → decision, in days, per review type (and kind / institution): count, median,
    90th percentile, mean, longest; and the submissions in review now. Also returns the filtered base."""
    decided = Q(status=Submission.Status.DECIDED) & day_range("decided_at", decided_from, decided_to)
    base = facts.filter(decided | Q(status__in=IN_REVIEW))
    if kinds:
        base = base.filter(kind__in=kinds)
    if institution_id:
        base = base.filter(institution_id=institution_id)
    plain = ["review_type", *(["kind"] if "kind" in group_by else [])]
    keys = {}
    order = list(plain)
    if "institution" in group_by:
        plain.append("institution_id")
        keys["institution_name"] = F("institution__name_zh")
        order += ["institution_name", "institution_id"]
    rows = base.values(*plain, **keys).annotate(**_turnaround_figures(decided)).order_by(*order)
    return base, rows, decided


def _turnaround_figures(decided: Q) -> dict:
    # Counting the status (never null), not the key: the facts' indexes hold every column the figures read.
    return {
        "decided": Count("status", filter=decided),
        "median_days": PercentileCont("days", 0.5, filter=decided),
        "p90_days": PercentileCont("days", 0.9, filter=decided),
        "mean_days": Avg("days", filter=decided),
        "max_days": Max("days", filter=decided),
        "in_review": Count("status", filter=Q(status__in=IN_REVIEW)),
    }


def turnaround_summary(*, base, decided: Q) -> dict:
    """The figures over every submission of the report (when they were not computed with the groups)."""
    return rounded_totals(base.aggregate(**_turnaround_figures(decided)))


def rounded_totals(totals: dict) -> dict:
    figures = _turnaround_figures(Q())
    totals = {name: value for name, value in totals.items() if name in figures}
    for name in ("median_days", "p90_days", "mean_days", "max_days"):
        totals[name] = rounded(totals[name])
    return totals


# --- safety-reporting timeliness ----------------------------------------------------------------------------------

# Each grouping: the clock's column of the group's key (copied onto the clock, see ethics.rollups), and the model and
# field that name the group.
SAFETY_GROUPS = {
    "institution": ("site_institution_id", Institution, "name_zh"),
    "trial": ("trial_id", Trial, "protocol_number"),
}
SAFETY_FIGURES = ("clocks", "on_time", "late", "open", "open_overdue")


def safety_clocks(
    *,
    viewer,
    started_from: datetime.date | None = None,
    started_to: datetime.date | None = None,
    institution_id: int | None = None,
    trial_id: int | None = None,
    kinds=(),
):
    """The clocks of the safety reports ``viewer`` may see (``SafetyClock.visible_to``), not those of withdrawn
    reports, that started in the period."""
    clocks = (
        SafetyClock.objects.visible_to(viewer)
        .filter(cancelled=False)
        .filter(day_range("started_at", started_from, started_to))
    )
    if institution_id:
        clocks = clocks.filter(site_institution_id=institution_id)
    if trial_id:
        clocks = clocks.filter(trial_id=trial_id)
    if kinds:
        clocks = clocks.filter(kind__in=kinds)
    return clocks


def _safety_figures(now: datetime.datetime) -> dict:
    met = Q(met_at__isnull=False)
    # Counted by the clock's kind (never null), not its key: every column read is in the indexes safety_clock_by_*,
    # so PostgreSQL reads the index alone (an index-only scan), in the groups' order.
    return {
        "clocks": Count("kind"),
        "on_time": Count("kind", filter=met & Q(late=False)),
        "late": Count("kind", filter=met & Q(late=True)),
        "open": Count("kind", filter=Q(met_at__isnull=True, due_at__gt=now)),
        "open_overdue": Count("kind", filter=Q(met_at__isnull=True, due_at__lte=now)),
        "median_hours": PercentileCont("elapsed_hours", 0.5, filter=met),
    }


def safety_timeliness(*, clocks, by: str, now: datetime.datetime) -> tuple[list[dict], dict]:
    """Per institution (of the site) or per trial, and per clock: clocks started, met on time, met late, open,
    open past the deadline, and the median time taken (hours and days) over the met clocks; and the same figures
    over every clock in scope. Ordered by the group's name. Two statements whatever the number of rows: the groups
    and their total (one pass over the index in the groups' order), then the names of the groups."""
    key, model, name = SAFETY_GROUPS[by]
    # Grouped by the key alone, in the order of the index (region, key, clock, time taken): no join, no sort.
    grouped = clocks.values(key, "kind").annotate(**_safety_figures(now)).order_by(key, "kind")
    found = groups_and_total(grouped)
    rows, total = found if found is not None else (list(grouped), clocks.aggregate(**_safety_figures(now)))
    if total is None:  # no clock in scope: PostgreSQL's grouping sets still give the empty total row
        total = clocks.aggregate(**_safety_figures(now))
    names = dict(model.objects.filter(pk__in={row[key] for row in rows}).values_list("pk", name)) if rows else {}
    groups = []
    for row in rows:
        row["group"], row["group_id"] = by, row.pop(key)
        row["group_name"] = names.get(row["group_id"])
        groups.append(_with_days(row))
    groups.sort(key=lambda row: (row["group_name"] or "", row["group_id"], row["kind"]))
    return groups, _with_days(total)


def safety_timeliness_page(data, *, clocks, by: str, now: datetime.datetime):
    """The page function of the ``safety-timeliness`` report on PostgreSQL (see ``cgtclinic.reporting.sql.
    page_with_totals``): one statement groups the clocks in the order of the index (no join, no sort of the clocks),
    with their total in the same pass (grouping sets), and returns only the page of groups, named and ordered by
    name, with the number of groups and the total; so a region's 90,000 trial-and-clock groups never reach Python.
    A system administrator's institutions are grouped under their region too (the same groups: an institution is in
    one region), so every region's range of the index is read in order."""
    key, model, name = SAFETY_GROUPS[by]
    keys = ("region_id", key) if by == "institution" else (key,)
    grouped = clocks.values(*keys, "kind").annotate(**_safety_figures(now)).order_by()
    sql, params = grouped.query.sql_with_params()
    head, _, grouped_by = sql.rpartition(" GROUP BY ")
    figures = ", ".join(f'g."{figure}"' for figure in (*SAFETY_FIGURES, "median_hours"))
    table, name_column = model._meta.db_table, model._meta.get_field(name).column
    statement = f"""
        WITH g AS MATERIALIZED ({head} GROUP BY GROUPING SETS (({grouped_by}), ()))
        SELECT * FROM (
            SELECT CAST(NULL AS bigint) AS group_id, CAST(NULL AS text) AS group_name, CAST(NULL AS text) AS kind,
                   {figures},
                   (SELECT COUNT(*) FROM g) - 1 AS rows_in_all, 0 AS ordinal
            FROM g WHERE g.kind IS NULL
        ) total
        UNION ALL
        SELECT * FROM (
            SELECT g."{key}", CAST(n."{name_column}" AS text), CAST(g.kind AS text), {figures}, CAST(NULL AS bigint),
                   ROW_NUMBER() OVER (ORDER BY n."{name_column}", g."{key}", g.kind)
            FROM g JOIN {table} n ON n.id = g."{key}"
            WHERE g.kind IS NOT NULL
            ORDER BY n."{name_column}", g."{key}", g.kind
            LIMIT %s OFFSET %s
        ) page
        ORDER BY ordinal
    """

    def page(offset: int, limit: int) -> list[dict]:
        found = fetch_dicts(statement, (*params, limit, offset))
        total = found.pop(0)
        data.count = total.pop("rows_in_all")
        data.summary = _with_days({figure: total[figure] for figure in (*SAFETY_FIGURES, "median_hours")})
        rows = []
        for row in found:
            del row["rows_in_all"], row["ordinal"]
            rows.append(_with_days({**row, "group": by}))
        return rows

    return page


def _with_days(row: dict) -> dict:
    hours = row.get("median_hours")
    row["median_hours"] = None if hours is None else Decimal(hours).quantize(Decimal("0.01"))
    row["median_days"] = None if hours is None else (Decimal(hours) / 24).quantize(Decimal("0.01"))
    met = row["on_time"] + row["late"]
    row["on_time_share"] = share(row["on_time"], met)
    return row
