"""The demo's safety reports: an SAE within its clocks, one reported to the committee late, a SUSAR awaiting the
PI's review, each replayed through ethics.safety with the effects due before each step; loading twice adds none."""

import pytest

from cgtclinic.seeding import load_seeds
from ethics.models import SafetyClock, SafetyEffect, SafetyEvent

pytestmark = pytest.mark.django_db
C = SafetyClock.Kind


@pytest.fixture
def demo_report(demo_loaded_once, db):
    return demo_loaded_once


def test_the_demo_shows_a_report_within_time_one_late_and_a_susar_awaiting_review(demo_report):
    within = SafetyEvent.objects.get(term__startswith="发热性中性粒细胞减少症")
    assert within.status == SafetyEvent.Status.SENT_TO_SPONSOR
    assert within.clocks.get(kind=C.SPONSOR_REPORT).late is False
    assert within.clocks.get(kind=C.EC_REPORT).met_at is None
    late = SafetyEvent.objects.get(term__startswith="免疫效应细胞")
    assert late.status == SafetyEvent.Status.REVIEWED and late.ec_submission is not None
    ec = late.clocks.get(kind=C.EC_REPORT)
    assert ec.late is True and ec.escalated_at is not None
    assert SafetyEffect.objects.filter(clock=ec, kind=SafetyEffect.Kind.ESCALATION).count() == 1
    susar = SafetyEvent.objects.get(kind=SafetyEvent.Kind.SUSAR)
    assert susar.status == SafetyEvent.Status.RECEIVED
    assert susar.clocks.get(kind=C.PI_REVIEW).met_at is None
    assert susar.clocks.get(kind=C.SUSAR_FOLLOW_UP).met_at is None


def test_loading_again_adds_no_report(demo_report):
    before = SafetyEvent.objects.count()
    report = load_seeds(demo=True)
    assert SafetyEvent.objects.count() == before
    assert report.tally(SafetyEvent).unchanged == before
