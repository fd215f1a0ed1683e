"""The PI's safety pages: report an SAE, see its clocks and time left, record that the sponsor and the committee
were told, file a follow-up; another hospital's PI gets 404; refusals are shown, not raised."""

import pytest
import time_machine
from django.urls import reverse

from ethics.models import SafetyClock, SafetyEvent
from tests.ethics.safety_world import beijing, build_world, load_safety_parameters, record_sae

pytestmark = pytest.mark.django_db


@pytest.fixture
def safety_world(db):
    load_safety_parameters()
    return build_world()


def form_data(world, **overrides) -> dict:
    return {
        "site": world["site"].pk,
        "kind": "sae",
        "subject": world["subject"].pk,
        "term": "肺部感染",
        "description": "住院抗感染治疗。",
        "criteria": ["hospitalisation"],
        "expectedness": "expected",
        "causality": "possibly_related",
        "outcome": "ongoing",
        "aware_at": "2026-03-02T08:00",
    } | overrides


def test_a_pi_reports_an_sae_and_records_who_was_told(client, safety_world):
    world = safety_world
    client.force_login(world["pi"])
    with time_machine.travel(beijing(2026, 3, 2, 9, 0), tick=False):
        assert client.get(reverse("ethics_portal:safety_new")).status_code == 200
        refused = client.post(reverse("ethics_portal:safety_new"), form_data(world, aware_at=""))
        assert refused.status_code == 400 and not SafetyEvent.objects.exists()
        done = client.post(reverse("ethics_portal:safety_new"), form_data(world))
        event = SafetyEvent.objects.get()
        assert done.status_code == 302 and done.url == reverse("ethics_portal:safety_detail", args=[event.pk])
        page = client.get(done.url).content.decode()
        assert 'id="clock-sponsor_report"' in page and "left" in page
        assert reverse("ethics_portal:safety_step", args=[event.pk, "send_to_sponsor"]) in page
        listing = client.get(reverse("ethics_portal:safety_list")).content.decode()
        assert "肺部感染" in listing
        client.post(reverse("ethics_portal:safety_step", args=[event.pk, "send_to_sponsor"]), {"at": "", "note": ""})
    with time_machine.travel(beijing(2026, 3, 3, 10, 0), tick=False):
        page = client.get(reverse("ethics_portal:safety_detail", args=[event.pk])).content.decode()
        assert "overdue" in page  # the committee report: 26 hours after awareness
        client.post(reverse("ethics_portal:safety_step", args=[event.pk, "report_to_ec"]), {"at": "", "note": ""})
    event.refresh_from_db()
    assert event.status == SafetyEvent.Status.REPORTED_TO_EC and event.ec_submission is not None
    assert event.clocks.get(kind=SafetyClock.Kind.EC_REPORT).late is True
    again = client.post(reverse("ethics_portal:safety_step", args=[event.pk, "report_to_ec"]), {}, follow=True)
    assert "not possible now" in again.content.decode()
    follow = client.post(
        reverse("ethics_portal:safety_follow_up", args=[event.pk]),
        form_data(world, outcome="recovered", aware_at="2026-03-05T08:00"),
    )
    assert follow.status_code == 302
    assert event.follow_ups.get().sequence == 1


def test_another_hospitals_pi_gets_404_and_offices_get_the_portals_403(client, safety_world):
    event = record_sae(safety_world)
    client.force_login(build_world()["pi"])
    assert client.get(reverse("ethics_portal:safety_detail", args=[event.pk])).status_code == 404
    assert client.post(reverse("ethics_portal:safety_step", args=[event.pk, "send_to_sponsor"])).status_code == 404
    assert "RK-001" not in client.get(reverse("ethics_portal:safety_list")).content.decode()
    client.force_login(safety_world["ethics_office"])
    assert client.get(reverse("ethics_portal:safety_list")).status_code == 403
