"""Policy values a report reads for many rows at once (caps, targets), loaded in one query."""

import datetime
from decimal import Decimal

from django.db.models import QuerySet

from cgtclinic.models import PolicyParameter


class PolicyValues:
    """Policy values for some codes, loaded in one query and looked up like ``PolicyParameter.value_for``.

    ``codes`` is a list of codes or a queryset of code values (then the query runs even when it finds none, so
    a report's query count does not depend on the data)."""

    def __init__(self, codes):
        if isinstance(codes, QuerySet):
            rows = PolicyParameter.objects.filter(code__in=codes)
        else:
            codes = sorted({code for code in codes if code})
            rows = PolicyParameter.objects.filter(code__in=codes) if codes else PolicyParameter.objects.none()
        self.rows: dict[str, list[PolicyParameter]] = {}
        for row in rows.order_by("-effective_from", "pk"):
            self.rows.setdefault(row.code, []).append(row)

    def value(self, code: str, *, region_id: int | None, on: datetime.date) -> Decimal | None:
        """The value in force on a day for a region, else the national one; None when there is neither."""
        in_force = [
            row
            for row in self.rows.get(code, ())
            if row.effective_from <= on and (row.effective_to is None or row.effective_to >= on)
        ]
        for wanted in (region_id, None):
            for row in in_force:
                if row.region_id == wanted:
                    return row.value
        return None
