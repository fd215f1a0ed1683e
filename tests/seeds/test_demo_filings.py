"""The demo's IIT reviews and research filings: a tester sees filings overdue and due soon, an IIT whose activation
is refused, and a new-technology filing that counts towards Guangdong's target."""

import pytest
from django.utils import timezone

from cgtclinic import workqueue
from cgtclinic.errors import DomainError
from cgtclinic.models import User
from trials import services
from trials.models import FilingObligation, Trial
from trials.reports import policy_targets

pytestmark = pytest.mark.django_db
F = FilingObligation


@pytest.fixture
def demo_report(demo_loaded_once, db):
    return demo_loaded_once


def test_the_demo_has_filings_overdue_due_soon_and_filed(demo_report):
    now = timezone.now()
    open_rows = F.objects.open()
    assert open_rows.filter(due_at__lte=now).exists()
    assert open_rows.filter(due_at__gt=now, remind_at__lte=now).exists()
    assert F.objects.filter(status=F.Status.FILED, late=True).exists()
    assert F.objects.filter(status=F.Status.FILED, late=False).exists()


def test_the_demo_research_office_and_pi_see_their_filings(demo_report):
    for username in ("research_office", "ruikang_pi_li", "binhai_ro", "binhai_pi_yang"):
        items = workqueue.work_queue(User.objects.get(username=username)).items
        assert any(item.kind == "filing.due" for item in items), username


def test_the_iit_sent_back_for_revision_cannot_be_activated(demo_report):
    trial = Trial.objects.get(protocol_number="JH-CART-2026-01")
    with pytest.raises(DomainError) as refused:
        services.trial_activate(trial=trial, actor=User.objects.get(username="jinghua_ro"))
    assert refused.value.code == "reviews_missing"


def test_the_new_technology_filing_counts_towards_guangdong(demo_report):
    admin = User.objects.get(username="admin")
    rows = policy_targets(viewer=admin, region_id=None, today=timezone.localdate())
    (guangdong,) = [row for row in rows if row["region_code"] == "guangdong"]
    filed = F.objects.filter(
        kind=F.Kind.NEW_TECHNOLOGY, status=F.Status.FILED, trial__lead_institution__region__code="guangdong"
    )
    assert guangdong["achieved"] == filed.count() >= 1
