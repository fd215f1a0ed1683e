"""The ethics office reviews a safety report with the admin's button; the institution keeps its own periods;
other hospitals' offices do not reach the report."""

import pytest
from django.urls import reverse

from ethics import safety
from ethics.models import SafetyEvent, SafetyReportingSettings
from tests.ethics.safety_world import build_world, record_sae

pytestmark = pytest.mark.django_db


def reported(world) -> SafetyEvent:
    event = record_sae(world)
    safety.safety_send_to_sponsor(event=event, actor=world["pi"])
    return safety.safety_report_to_ec(event=event, actor=world["pi"])


def test_the_ethics_office_reviews_with_the_button(client, world):
    event = reported(world)
    client.force_login(world["ethics_office"])
    listing = client.get(reverse("admin:ethics_safetyevent_changelist"))
    assert listing.status_code == 200 and event.term in listing.content.decode()
    page = client.get(reverse("admin:ethics_safetyevent_change", args=[event.pk])).content.decode()
    url = reverse("admin:ethics_safetyevent_step", args=[event.pk, "committee_review"])
    assert url in page
    assert "小时" in page and "剩余" in page  # the committee-review clock's time left (the admin is Chinese)
    assert reverse("admin:ethics_safetyevent_step", args=[event.pk, "send_to_sponsor"]) not in page
    refused = client.post(url, {"opinion": ""})
    assert refused.status_code == 200 and refused.context["form"].errors
    done = client.post(url, {"opinion": "同意继续"})
    assert done.status_code == 302
    event.refresh_from_db()
    assert event.status == SafetyEvent.Status.REVIEWED and event.committee_reviewed_by == world["ethics_office"]


def test_a_step_the_office_may_not_take_is_refused_on_the_form(client, world):
    event = record_sae(world)
    client.force_login(world["ethics_office"])
    response = client.post(reverse("admin:ethics_safetyevent_step", args=[event.pk, "send_to_sponsor"]), {})
    assert response.status_code == 200 and response.context["form"].non_field_errors()
    event.refresh_from_db()
    assert event.status == SafetyEvent.Status.RECORDED


def test_other_hospitals_offices_get_404(client, world):
    event = reported(world)
    client.force_login(build_world()["ethics_office"])
    assert client.get(reverse("admin:ethics_safetyevent_change", args=[event.pk])).status_code in (302, 404)
    step = reverse("admin:ethics_safetyevent_step", args=[event.pk, "committee_review"])
    assert client.post(step, {"opinion": "x"}).status_code == 404


def test_the_ethics_office_sets_its_institutions_period(client, world):
    client.force_login(world["ethics_office"])
    added = client.post(
        reverse("admin:ethics_safetyreportingsettings_add"),
        {"institution": build_world()["hospital"].pk, "ec_report_hours": "48"},
    )
    assert added.status_code == 302
    settings_row = SafetyReportingSettings.objects.get()
    assert (settings_row.institution, settings_row.ec_report_hours) == (world["hospital"], 48)
    event = record_sae(world)
    assert event.clocks.get(kind="ec_report").period == 48
    client.force_login(world["research_office"])
    changelist = client.get(reverse("admin:ethics_safetyreportingsettings_changelist"))
    assert changelist.status_code == 200
    assert client.get(reverse("admin:ethics_safetyreportingsettings_add")).status_code == 403


def test_the_research_office_records_a_received_susar_in_the_admin(client, world):
    client.force_login(world["research_office"])
    listing = client.get(reverse("admin:ethics_safetyevent_changelist")).content.decode()
    url = reverse("admin:ethics_safetyevent_record")
    assert url in listing
    data = {
        "site": world["site"].pk,
        "kind": "susar",
        "term": "间质性肺炎",
        "description": "他中心病例，首次报告。",
        "criteria": ["hospitalisation"],
        "expectedness": "unexpected",
        "causality": "possibly_related",
        "outcome": "ongoing",
        "sponsor_aware_on": "2026-03-01",
        "received_at": "",
    }
    refused = client.post(url, data)
    assert refused.status_code == 200 and refused.context["form"].errors
    done = client.post(url, data | {"received_at": "2026-03-02 10:00"})
    assert done.status_code == 302
    event = SafetyEvent.objects.get()
    assert (event.kind, event.status, event.reported_by) == ("susar", "received", world["research_office"])
    client.force_login(world["ethics_office"])
    assert client.get(url).status_code == 404


def test_an_office_with_its_periods_set_edits_them_instead_of_adding(client, world):
    own = SafetyReportingSettings.objects.create(institution=world["hospital"], pi_review_days=5)
    client.force_login(world["ethics_office"])
    response = client.get(reverse("admin:ethics_safetyreportingsettings_add"))
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:ethics_safetyreportingsettings_change", args=[own.pk])
