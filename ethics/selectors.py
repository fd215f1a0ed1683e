"""Scoped reads for ethics reports: mutual-recognition timeliness per alliance or per institution."""

import datetime
import statistics
from decimal import Decimal

from django.db import connection
from django.db.models import Aggregate, Count, DecimalField, F, Q
from django.utils import timezone

from ethics.models import RecognitionRequest

R = RecognitionRequest.Status
ANSWERED = [R.RECOGNISED, R.RECOGNISED_WITH_CONDITIONS, R.DECLINED]
GROUPS = {
    "alliance": ("alliance_id", "alliance__name_zh"),
    "institution": ("committee__institution_id", "committee__institution__name_zh"),
}


class PercentileCont(Aggregate):
    """PostgreSQL's continuous percentile, so the median and p90 are computed where the rows are."""

    function = "PERCENTILE_CONT"
    template = "%(function)s(%(percentile)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = DecimalField(max_digits=10, decimal_places=2)

    def __init__(self, expression, percentile: float, **extra):
        super().__init__(expression, percentile=percentile, **extra)


def recognition_timeliness(*, requests, by: str, now: datetime.datetime | None = None) -> list[dict]:
    """Per alliance or institution: received, answered on time, late, still open, overdue, and the median and
    90th percentile of the response time in working hours. ``requests`` is already scoped to the viewer."""
    key, name = GROUPS[by]
    now = now or timezone.now()
    answered = Q(status__in=ANSWERED)
    rows = (
        requests.exclude(status__in=[R.WITHDRAWN, R.SUPERSEDED])
        .values(group_id=F(key), group_name=F(name))
        .annotate(
            received=Count("pk"),
            answered_on_time=Count("pk", filter=answered & Q(late=False)),
            answered_late=Count("pk", filter=answered & Q(late=True)),
            open=Count("pk", filter=Q(status=R.OPEN, due_at__gt=now)),
            overdue=Count("pk", filter=Q(status=R.OPEN, due_at__lte=now)),
        )
        .order_by("group_name")
    )
    if connection.vendor == "postgresql":
        rows = rows.annotate(
            median_working_hours=PercentileCont("response_working_hours", 0.5, filter=answered),
            p90_working_hours=PercentileCont("response_working_hours", 0.9, filter=answered),
        )
        return [_rounded(row) for row in rows]
    # SQLite (make run's default) has no percentile aggregate; a development data set is small.
    result = []
    for row in rows:
        hours = sorted(
            requests.filter(answered, **{key: row["group_id"]}).values_list("response_working_hours", flat=True)
        )
        row["median_working_hours"] = _percentile(hours, 0.5)
        row["p90_working_hours"] = _percentile(hours, 0.9)
        result.append(_rounded(row))
    return result


def _percentile(values: list[Decimal], fraction: float) -> Decimal | None:
    """The same interpolation as PERCENTILE_CONT."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return Decimal(str(statistics.quantiles(values, n=100, method="inclusive")[round(fraction * 100) - 1]))


def _rounded(row: dict) -> dict:
    for field in ("median_working_hours", "p90_working_hours"):
        if row.get(field) is not None:
            row[field] = Decimal(row[field]).quantize(Decimal("0.01"))
    return row
