"""Regulator reports over ethics review: mutual-recognition timeliness (with the overdue requests), review turnaround,
and the timeliness of safety reporting (per institution or trial and per clock).

Recognition requests are scoped by ``RecognitionRequest.visible_to`` (a regulator: requests to committees of
the region). Submissions have no regulator scope (regulators never see one), so the turnaround report filters
them by the committee's region here, and returns only aggregates.
"""

import datetime
from decimal import Decimal

from django.db.models import Avg, Count, F, Max, Q, Window
from django.utils import timezone

from cgtclinic.reporting.sql import DaysBetweenTimes, PercentileCont, day_range, groups_and_total, rounded, share
from ethics.models import RecognitionRequest, SafetyClock, SafetyEvent, Submission
from ethics.selectors import ANSWERED, R, recognition_timeliness_groups, timeliness_group

COUNTED = Q(status__in=[*ANSWERED, R.OPEN])


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


TOTAL_FIGURES = ("received", "answered_on_time", "answered_late", "open", "overdue")


def timeliness(*, requests, by: str, now: datetime.datetime) -> tuple[list[dict], dict]:
    """The groups (per alliance or per participating institution, see ``ethics.selectors.recognition_timeliness``)
    and the same figures over every request in scope, in one statement where the database has GROUPING SETS."""
    grouped = recognition_timeliness_groups(requests=requests, by=by, now=now)
    together = groups_and_total(grouped)
    if together is None:
        groups, total = list(grouped), timeliness_summary(requests=requests, now=now)
    else:
        groups, total = together
        total = summary_of(total or dict.fromkeys(TOTAL_FIGURES, 0))
    rows = []
    for row in groups:
        row = timeliness_group(row, by)
        row["group"] = by
        row["on_time_share"] = share(row["answered_on_time"], row["answered_on_time"] + row["answered_late"])
        rows.append(row)
    return rows, total


def timeliness_summary(*, requests, now: datetime.datetime) -> dict:
    """The figures over every request in scope (withdrawn and superseded requests do not count), on its own."""
    answered = Q(status__in=ANSWERED)
    totals = requests.filter(COUNTED).aggregate(
        received=Count("pk"),
        answered_on_time=Count("pk", filter=answered & Q(late=False)),
        answered_late=Count("pk", filter=answered & Q(late=True)),
        open=Count("pk", filter=Q(status=R.OPEN, due_at__gt=now)),
        overdue=Count("pk", filter=Q(status=R.OPEN, due_at__lte=now)),
        median_working_hours=PercentileCont("response_working_hours", 0.5, filter=answered),
        p90_working_hours=PercentileCont("response_working_hours", 0.9, filter=answered),
    )
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


def submissions_in_region(*, user, region_id: int | None):
    """Submissions to the committees of a region (all regions for a system administrator without one). Regulators
    see no single submission (``Submission.visible_to``), so the region is applied here, for aggregates only."""
    if region_id is None:
        return Submission.objects.visible_to(user)
    return Submission.objects.filter(committee__institution__region_id=region_id)


def turnaround(
    *,
    submissions,
    group_by=(),
    decided_from: datetime.date | None = None,
    decided_to: datetime.date | None = None,
    kinds=(),
    institution_id: int | None = None,
):
    """Received (first submitted) → decision, in days, per review type (and kind / institution): count, median,
    90th percentile, mean, longest; and the submissions in review now. Also returns the filtered base."""
    decided = Q(status=Submission.Status.DECIDED, submitted_at__isnull=False) & day_range(
        "decided_at", decided_from, decided_to
    )
    base = submissions.exclude(review_type="").filter(decided | Q(status__in=IN_REVIEW))
    if kinds:
        base = base.filter(kind__in=kinds)
    if institution_id:
        base = base.filter(committee__institution_id=institution_id)
    base = base.annotate(days=DaysBetweenTimes(F("decided_at"), F("submitted_at")))
    plain = ["review_type", *(["kind"] if "kind" in group_by else [])]
    keys = {}
    order = list(plain)
    if "institution" in group_by:
        plain.append("committee__institution_id")
        keys["institution_name"] = F("committee__institution__name_zh")
        order += ["institution_name", "committee__institution_id"]
    rows = base.values(*plain, **keys).annotate(**_turnaround_figures(decided)).order_by(*order)
    return base, rows, decided


def _turnaround_figures(decided: Q) -> dict:
    return {
        "decided": Count("pk", filter=decided),
        "median_days": PercentileCont("days", 0.5, filter=decided),
        "p90_days": PercentileCont("days", 0.9, filter=decided),
        "mean_days": Avg("days", filter=decided),
        "max_days": Max("days", filter=decided),
        "in_review": Count("pk", filter=Q(status__in=IN_REVIEW)),
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

SAFETY_GROUPS = {
    "institution": ("event__site__institution_id", "event__site__institution__name_zh"),
    "trial": ("event__trial_id", "event__trial__protocol_number"),
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
    """The clocks of the safety reports ``viewer`` may see (``SafetyEvent.visible_to``), not those of withdrawn
    reports, that started in the period."""
    clocks = SafetyClock.objects.filter(
        event__in=SafetyEvent.objects.visible_to(viewer).values("pk"), cancelled=False
    ).filter(day_range("started_at", started_from, started_to))
    if institution_id:
        clocks = clocks.filter(event__site__institution_id=institution_id)
    if trial_id:
        clocks = clocks.filter(event__trial_id=trial_id)
    if kinds:
        clocks = clocks.filter(kind__in=kinds)
    return clocks


def _safety_figures(now: datetime.datetime) -> dict:
    met = Q(met_at__isnull=False)
    return {
        "clocks": Count("pk"),
        "on_time": Count("pk", filter=met & Q(late=False)),
        "late": Count("pk", filter=met & Q(late=True)),
        "open": Count("pk", filter=Q(met_at__isnull=True, due_at__gt=now)),
        "open_overdue": Count("pk", filter=Q(met_at__isnull=True, due_at__lte=now)),
        "median_hours": PercentileCont("elapsed_hours", 0.5, filter=met),
    }


def safety_timeliness(*, clocks, by: str, now: datetime.datetime) -> tuple[list[dict], dict]:
    """Per institution (of the site) or per trial, and per clock: clocks started, met on time, met late, open,
    open past the deadline, and the median time taken (hours and days) over the met clocks; and the same figures
    over every clock in scope. Two statements whatever the number of rows."""
    key, name = SAFETY_GROUPS[by]
    rows = clocks.values(key, name, "kind").annotate(**_safety_figures(now)).order_by(name, key, "kind")
    groups = []
    for row in rows:
        row["group"], row["group_id"], row["group_name"] = by, row.pop(key), row.pop(name)
        groups.append(_with_days(row))
    total = _with_days(clocks.aggregate(**_safety_figures(now)))
    return groups, total


def _with_days(row: dict) -> dict:
    hours = row.get("median_hours")
    row["median_hours"] = None if hours is None else Decimal(hours).quantize(Decimal("0.01"))
    row["median_days"] = None if hours is None else (Decimal(hours) / 24).quantize(Decimal("0.01"))
    met = row["on_time"] + row["late"]
    row["on_time_share"] = share(row["on_time"], met)
    return row
