"""Regulator reports over ethics review: mutual-recognition timeliness, overdue requests, review turnaround.

Recognition requests are scoped by ``RecognitionRequest.visible_to`` (a regulator: requests to committees of
the region). Submissions have no regulator scope (regulators never see one), so the turnaround report filters
them by the committee's region here, and returns only aggregates.
"""

import datetime

from django.db.models import Avg, Count, DateTimeField, F, Max, Q, Value

from cgtclinic.api.reports import DaysBetweenTimes, PercentileCont, day_range, rounded, share
from ethics.models import RecognitionRequest, Submission
from ethics.selectors import ANSWERED, R, recognition_timeliness

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


def timeliness_rows(*, requests, by: str, now: datetime.datetime) -> list[dict]:
    """Per alliance or per (participating) institution; see ``ethics.selectors.recognition_timeliness``."""
    rows = recognition_timeliness(requests=requests, by=by, now=now)
    for row in rows:
        row["group"] = by
        answered = row["answered_on_time"] + row["answered_late"]
        row["on_time_share"] = share(row["answered_on_time"], answered)
    return rows


def timeliness_summary(*, requests, now: datetime.datetime) -> dict:
    """The same figures over every request in scope (withdrawn and superseded requests do not count)."""
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
    totals["median_working_hours"] = rounded(totals["median_working_hours"], 2)
    totals["p90_working_hours"] = rounded(totals["p90_working_hours"], 2)
    totals["on_time_share"] = share(totals["answered_on_time"], totals["answered_on_time"] + totals["answered_late"])
    return totals


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


def overdue_summary(*, requests, now: datetime.datetime) -> dict:
    overdue = requests.filter(status=R.OPEN, due_at__lte=now)
    totals = overdue.aggregate(
        overdue=Count("pk"),
        institutions=Count("committee__institution_id", distinct=True),
        median_overdue_days=PercentileCont(DaysBetweenTimes(_now(now), F("due_at")), 0.5),
        max_overdue_days=Max(DaysBetweenTimes(_now(now), F("due_at"))),
    )
    totals["median_overdue_days"] = rounded(totals["median_overdue_days"])
    totals["max_overdue_days"] = rounded(totals["max_overdue_days"])
    return totals


def _now(now: datetime.datetime):
    return Value(now, output_field=DateTimeField())


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
