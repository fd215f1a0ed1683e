"""A safety report's next deadline (``SafetyEvent.next_due_at``) follows its clocks through every step, the offices'
admin list and the PI's list put the report with the most urgent open clock first however old it is, and the
rollup check finds nothing to mend after the steps."""

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from cgtclinic import rollups
from ethics import safety
from ethics.models import SafetyClock, SafetyEvent
from ethics.portal import safety_views
from tests.ethics.safety_world import record_sae
from tests.factories.cgtclinic import RegionFactory

pytestmark = pytest.mark.django_db
NAME = ["ethics.safety_next_due"]
SCOPE = ["ethics.safety_clock_scope"]


def earliest_open(event) -> datetime.datetime | None:
    clocks = SafetyClock.objects.filter(event=event).open().order_by("due_at")
    return clocks.values_list("due_at", flat=True).first()


def test_the_next_deadline_follows_the_clocks_through_the_steps(world):
    event = record_sae(world)
    event.refresh_from_db()
    sponsor = SafetyClock.objects.get(event=event, kind=SafetyClock.Kind.SPONSOR_REPORT)
    assert event.next_due_at == earliest_open(event) == sponsor.due_at

    safety.safety_send_to_sponsor(event=event, actor=world["pi"])
    event.refresh_from_db()
    assert event.next_due_at == earliest_open(event)
    assert event.next_due_at == SafetyClock.objects.get(event=event, kind=SafetyClock.Kind.EC_REPORT).due_at

    safety.safety_report_to_ec(event=event, actor=world["pi"])
    event.refresh_from_db()
    review = SafetyClock.objects.get(event=event, kind=SafetyClock.Kind.COMMITTEE_REVIEW)
    assert event.next_due_at == review.due_at
    assert rollups.differences(NAME) == {}

    safety.safety_committee_review(event=event, actor=world["ethics_office"], opinion="同意继续")
    event.refresh_from_db()
    assert event.next_due_at is None
    assert rollups.differences(NAME) == {}


def test_each_clock_carries_its_reports_trial_site_institution_and_region(world):
    event = record_sae(world)
    safety.safety_send_to_sponsor(event=event, actor=world["pi"])
    safety.safety_report_to_ec(event=event, actor=world["pi"])

    hospital = world["hospital"]
    scopes = set(SafetyClock.objects.filter(event=event).values_list("trial", "site_institution", "region"))
    assert scopes == {(world["trial"].pk, hospital.pk, hospital.region_id)}
    assert rollups.differences(SCOPE) == {}

    # An institution moved to another region (an admin correction) is found by the check and mended by the rebuild.
    other = RegionFactory(code="elsewhere")
    type(hospital).objects.filter(pk=hospital.pk).update(region=other)
    assert list(rollups.differences(SCOPE)) == SCOPE
    assert rollups.rebuild(SCOPE) == {SCOPE[0]: 3}
    assert set(SafetyClock.objects.filter(event=event).values_list("region", flat=True)) == {other.pk}
    assert rollups.differences(SCOPE) == {}


def test_a_withdrawn_report_has_no_next_deadline(world):
    event = record_sae(world)
    safety.safety_withdraw(event=event, actor=world["pi"], reason="录入错误")
    event.refresh_from_db()
    assert event.next_due_at is None
    assert rollups.differences(NAME) == {}


def test_the_check_finds_a_drifted_deadline_and_the_rebuild_mends_it(world):
    event = record_sae(world)
    SafetyEvent.objects.filter(pk=event.pk).update(next_due_at=None)
    assert list(rollups.differences(NAME)) == NAME
    assert rollups.rebuild(NAME) == {NAME[0]: 1}
    assert rollups.differences(NAME) == {}
    event.refresh_from_db()
    assert event.next_due_at == earliest_open(event)


def urgent_old_report_and_newer_done_ones(world, newer: int) -> SafetyEvent:
    """An SAE recorded three days ago and left open (overdue), then ``newer`` reports whose clocks are all met."""
    urgent = record_sae(world, aware_at=timezone.now() - datetime.timedelta(days=3), term="急性肾损伤 3级")
    for number in range(newer):
        done = record_sae(world, term=f"发热 {number}")
        safety.safety_send_to_sponsor(event=done, actor=world["pi"])
        safety.safety_report_to_ec(event=done, actor=world["pi"])
        safety.safety_committee_review(event=done, actor=world["ethics_office"], opinion="同意")
    return urgent


def test_the_office_list_puts_the_overdue_report_first_and_filters_it(client, world, django_assert_max_num_queries):
    urgent = urgent_old_report_and_newer_done_ones(world, newer=3)
    client.force_login(world["ethics_office"])
    url = reverse("admin:ethics_safetyevent_changelist")

    with django_assert_max_num_queries(12):
        listing = client.get(url)
    rows = list(listing.context["cl"].result_list)
    assert rows[0] == urgent and len(rows) == 4
    assert "overdue" in listing.content.decode() or "已逾期" in listing.content.decode()

    overdue = client.get(url, {"deadline": "overdue"})
    assert list(overdue.context["cl"].result_list) == [urgent]


def test_the_pis_list_keeps_an_old_open_report_past_the_newest(client, world, monkeypatch):
    """The list shows at most LIST_LIMIT reports: an older report with an open clock is among them, before newer
    reports that need nothing."""
    monkeypatch.setattr(safety_views, "LIST_LIMIT", 2)
    urgent = urgent_old_report_and_newer_done_ones(world, newer=3)
    client.force_login(world["pi"])

    listing = client.get(reverse("ethics_portal:safety_list"))

    events = listing.context["events"]
    assert events[0] == urgent and len(events) == 2
    assert [clock.kind for clock in events[0].open_clocks][:1] == [SafetyClock.Kind.SPONSOR_REPORT]
    assert "急性肾损伤 3级" in listing.content.decode()


@pytest.mark.parametrize("term", ["肾损伤", "PROTOCOL", "RK-001", "SP-2026-77"])
def test_the_office_finds_a_report_by_term_protocol_subject_or_sponsor_case(client, world, term):
    wanted = record_sae(world, term="急性肾损伤 3级", sponsor_reference="SP-2026-77")
    other = record_sae(world, term="发热", subject=None)
    type(world["trial"]).objects.filter(pk=world["trial"].pk).update(protocol_number="PROTOCOL-9")
    client.force_login(world["ethics_office"])

    found = list(client.get(reverse("admin:ethics_safetyevent_changelist"), {"q": term}).context["cl"].result_list)

    if term == "PROTOCOL":  # a protocol number matches in part: both reports of the trial
        assert set(found) == {wanted, other}
    else:
        assert found == [wanted]
