"""The research-filings report against the figures counted in the test from the filings themselves."""

import datetime
import random

import pytest
import time_machine
from django.utils import timezone

from tests.factories.trials import FilingObligationFactory, TrialFactory
from tests.reports.helpers import report
from trials.models import FilingObligation

pytestmark = pytest.mark.django_db
SH = datetime.timezone(datetime.timedelta(hours=8))
NOW = datetime.datetime(2026, 7, 1, 10, tzinfo=SH)
F = FilingObligation
FIGURES = ("due", "filed_on_time", "filed_late", "overdue", "open")


@pytest.fixture
def filings(institution, neighbour, outsider):
    """Filings of every kind and state at two hospitals of the region and one elsewhere, some outside 2026."""
    rng = random.Random(12)
    made = []
    for lead in (institution, neighbour, outsider):
        trial = TrialFactory(lead_institution=lead)
        for _ in range(14):
            due = datetime.datetime(2025, 11, 1, tzinfo=SH) + datetime.timedelta(days=rng.randrange(0, 500))
            status = rng.choice([F.Status.OPEN, F.Status.FILED, F.Status.FILED, F.Status.CANCELLED])
            late = status == F.Status.FILED and rng.random() < 0.4
            made.append(
                FilingObligationFactory(
                    trial=trial,
                    kind=rng.choice(F.Kind.values),
                    basis_on=datetime.date(2025, 10, 1),
                    due_at=due,
                    status=status,
                    late=late,
                    filed_on=timezone.localdate(due) if status == F.Status.FILED else None,
                )
            )
    # A deadline at 24:00 of 31 December 2026 belongs to 2026; one at 24:00 of 31 December 2025 does not.
    for day in (datetime.date(2026, 12, 31), datetime.date(2025, 12, 31)):
        end = datetime.datetime.combine(day + datetime.timedelta(days=1), datetime.time(0), tzinfo=SH)
        made.append(
            FilingObligationFactory(
                trial=trial.__class__.objects.filter(lead_institution=institution).first(), due_at=end
            )
        )
    return made


def expected(region, start: datetime.date, end: datetime.date, kinds=None) -> dict[int, list[int]]:
    """Counted here: per lead institution of the region, the filings whose deadline's last day is in the period."""
    counts: dict[int, list[int]] = {}
    for f in F.objects.select_related("trial__lead_institution"):
        last_day = (f.due_at.astimezone(SH) - datetime.timedelta(microseconds=1)).date()
        if f.trial.lead_institution.region_id != region.pk or f.status == F.Status.CANCELLED:
            continue
        if not start <= last_day <= end or (kinds and f.kind not in kinds):
            continue
        row = counts.setdefault(f.trial.lead_institution_id, [0, 0, 0, 0, 0])
        row[0] += 1
        row[1] += f.status == F.Status.FILED and not f.late
        row[2] += f.status == F.Status.FILED and f.late
        row[3] += f.status == F.Status.OPEN and f.due_at <= NOW
        row[4] += f.status == F.Status.OPEN and f.due_at > NOW
    return counts


def figures(data) -> dict[int, list[int]]:
    return {row["institution_id"]: [row[name] for name in FIGURES] for row in data["rows"]}


@time_machine.travel(NOW, tick=False)
def test_figures_match_the_filings(filings, regulator, region):
    data = report(regulator, "research-filings")
    assert figures(data) == expected(region, datetime.date(2026, 1, 1), datetime.date(2026, 12, 31))
    for name in FIGURES:
        assert data["summary"][name] == sum(row[name] for row in data["rows"])
    recorded = data["summary"]["filed_on_time"] + data["summary"]["filed_late"]
    assert data["summary"]["on_time_share"] == round(data["summary"]["filed_on_time"] / recorded, 4)


@time_machine.travel(NOW, tick=False)
def test_period_and_kind_filters(filings, regulator, region):
    data = report(regulator, "research-filings", due_from="2025-11-01", due_to="2026-06-30", kind="annual,change")
    assert figures(data) == expected(
        region, datetime.date(2025, 11, 1), datetime.date(2026, 6, 30), kinds={"annual", "change"}
    )


@time_machine.travel(NOW, tick=False)
def test_csv_export(filings, regulator):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(regulator)
    response = client.get("/api/v1/reports/research-filings/", {"format": "csv"})
    assert response.status_code == 200 and "filed_on_time" in response.content.decode("utf-8-sig").splitlines()[0]
