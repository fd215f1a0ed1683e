"""Scoped reads for ethics reports: mutual-recognition timeliness per alliance or per institution."""

import datetime
from decimal import Decimal

from django.db.models import Count, DecimalField, F, Q
from django.utils import timezone

from cgtclinic.api.reports import PercentileCont
from ethics.models import RecognitionRequest

R = RecognitionRequest.Status
ANSWERED = [R.RECOGNISED, R.RECOGNISED_WITH_CONDITIONS, R.DECLINED]
GROUPS = {
    "alliance": ("alliance_id", "alliance__name_zh"),
    "institution": ("committee__institution_id", "committee__institution__name_zh"),
}


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
    hours = DecimalField(max_digits=10, decimal_places=2)
    rows = rows.annotate(
        median_working_hours=PercentileCont("response_working_hours", 0.5, filter=answered, output_field=hours),
        p90_working_hours=PercentileCont("response_working_hours", 0.9, filter=answered, output_field=hours),
    )
    return [_rounded(row) for row in rows]


def _rounded(row: dict) -> dict:
    for field in ("median_working_hours", "p90_working_hours"):
        if row.get(field) is not None:
            row[field] = Decimal(row[field]).quantize(Decimal("0.01"))
    return row
