"""Scoped reads for ethics reports: mutual-recognition timeliness per alliance or per institution."""

import datetime
from decimal import Decimal

from django.db.models import Count, DecimalField, Q, QuerySet
from django.utils import timezone

from cgtclinic.api.reports import PercentileCont
from ethics.models import RecognitionRequest

R = RecognitionRequest.Status
ANSWERED = [R.RECOGNISED, R.RECOGNISED_WITH_CONDITIONS, R.DECLINED]
# Plain columns (no aliases), so that the groups and their total can come from one GROUPING SETS statement.
GROUPS = {
    "alliance": ("alliance_id", "alliance__name_zh"),
    "institution": ("committee__institution_id", "committee__institution__name_zh"),
}


def recognition_timeliness_groups(*, requests, by: str, now: datetime.datetime | None = None) -> QuerySet:
    """The grouped QuerySet behind ``recognition_timeliness``, keyed by the plain group columns (``GROUPS``)."""
    key, name = GROUPS[by]
    now = now or timezone.now()
    answered = Q(status__in=ANSWERED)
    hours = DecimalField(max_digits=10, decimal_places=2)
    return (
        requests.exclude(status__in=[R.WITHDRAWN, R.SUPERSEDED])
        .values(key, name)
        .annotate(
            received=Count("pk"),
            answered_on_time=Count("pk", filter=answered & Q(late=False)),
            answered_late=Count("pk", filter=answered & Q(late=True)),
            open=Count("pk", filter=Q(status=R.OPEN, due_at__gt=now)),
            overdue=Count("pk", filter=Q(status=R.OPEN, due_at__lte=now)),
            median_working_hours=PercentileCont("response_working_hours", 0.5, filter=answered, output_field=hours),
            p90_working_hours=PercentileCont("response_working_hours", 0.9, filter=answered, output_field=hours),
        )
        .order_by(name, key)
    )


def recognition_timeliness(*, requests, by: str, now: datetime.datetime | None = None) -> list[dict]:
    """Per alliance or institution: received, answered on time, late, still open, overdue, and the median and
    90th percentile of the response time in working hours. ``requests`` is already scoped to the viewer."""
    return [timeliness_group(row, by) for row in recognition_timeliness_groups(requests=requests, by=by, now=now)]


def timeliness_group(row: dict, by: str) -> dict:
    """A row of ``recognition_timeliness_groups`` with its keys named ``group_id`` and ``group_name``."""
    key, name = GROUPS[by]
    row["group_id"] = row.pop(key)
    row["group_name"] = row.pop(name)
    return _rounded(row)


def _rounded(row: dict) -> dict:
    for field in ("median_working_hours", "p90_working_hours"):
        if row.get(field) is not None:
            row[field] = Decimal(row[field]).quantize(Decimal("0.01"))
    return row
