"""The safety-report API: a PI reports an SAE and takes its steps, the ethics office reviews; other hospitals get
404, regulators 403 (they read the report only); refused steps are 409, denials 403; constant query counts."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from cgtclinic.roles import Role
from ethics.models import SafetyEvent
from tests.ethics.safety_world import build_world, load_safety_parameters, record_sae
from tests.factories.cgtclinic import UserFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/safety-events/"


@pytest.fixture
def world(db):
    load_safety_parameters()
    return build_world()


def as_user(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def sae_body(world, **overrides) -> dict:
    return {
        "site": world["site"].pk,
        "kind": "sae",
        "subject": world["subject"].pk,
        "term": "发热伴低血压",
        "description": "输注后第2天发热39.5℃，低血压，住院治疗。",
        "criteria": ["hospitalisation"],
        "expectedness": "expected",
        "causality": "related",
        "aware_at": "2026-03-02T08:00:00+08:00",
    } | overrides


def test_a_pi_reports_an_sae_and_takes_its_steps_and_the_office_reviews(world):
    pi = as_user(world["pi"])
    created = pi.post(URL, sae_body(world), format="json")
    assert created.status_code == 201, created.content
    event = created.json()
    assert {clock["kind"] for clock in event["clocks"]} == {"sponsor_report", "ec_report"}
    assert event["available_steps"] == ["send_to_sponsor", "follow_up", "withdraw"]
    assert event["subject_code"] == "RK-001"
    sent = pi.post(f"{URL}{event['id']}/send-to-sponsor/", {"at": "2026-03-02T09:00:00+08:00"}, format="json")
    assert sent.status_code == 200 and sent.json()["status"] == "sent_to_sponsor"
    again = pi.post(f"{URL}{event['id']}/send-to-sponsor/", {}, format="json")
    assert again.status_code == 409
    reported = pi.post(f"{URL}{event['id']}/report-to-ec/", {}, format="json")
    assert reported.status_code == 200 and reported.json()["ec_submission"]
    assert pi.post(f"{URL}{event['id']}/committee-review/", {"opinion": "x"}, format="json").status_code == 403
    office = as_user(world["ethics_office"])
    missing = office.post(f"{URL}{event['id']}/committee-review/", {}, format="json")
    assert missing.status_code == 400
    reviewed = office.post(f"{URL}{event['id']}/committee-review/", {"opinion": "同意"}, format="json")
    assert reviewed.status_code == 200 and reviewed.json()["status"] == "reviewed"
    follow = pi.post(f"{URL}{event['id']}/follow-up/", sae_body(world, outcome="recovered"), format="json")
    assert follow.status_code == 201 and follow.json()["sequence"] == 1


def test_bad_input_is_refused_with_400(world):
    pi = as_user(world["pi"])
    assert pi.post(URL, sae_body(world, criteria=[]), format="json").status_code == 400
    assert pi.post(URL, sae_body(world, aware_at=None), format="json").status_code == 400
    assert pi.post(URL, sae_body(world, kind="susar"), format="json").status_code == 400
    assert pi.post(URL, sae_body(world, aware_at="2099-01-01T00:00:00+08:00"), format="json").status_code == 400
    assert not SafetyEvent.objects.exists()


def test_scoping(world):
    event = record_sae(world)
    elsewhere = build_world()
    for user in (elsewhere["pi"], elsewhere["ethics_office"], elsewhere["research_office"]):
        client = as_user(user)
        assert client.get(f"{URL}{event.pk}/").status_code == 404
        assert client.post(f"{URL}{event.pk}/send-to-sponsor/", {}, format="json").status_code == 404
        assert client.get(URL).json()["results"] == []
    assert as_user(elsewhere["pi"]).post(URL, sae_body(world), format="json").status_code == 400
    regulator = UserFactory(role=Role.REGULATOR, region=world["hospital"].region)
    assert as_user(regulator).get(URL).status_code == 403
    assert as_user(regulator).get(f"{URL}{event.pk}/").status_code == 403
    for user in (world["pi"], world["ethics_office"], world["research_office"]):
        assert [row["id"] for row in as_user(user).get(URL).json()["results"]] == [event.pk]
    assert APIClient().get(URL).status_code in (401, 403)


def test_list_queries_do_not_grow(world):
    client = as_user(world["research_office"])
    used = []
    for count in (2, 12):
        while SafetyEvent.objects.count() < count:
            record_sae(world)
        with CaptureQueriesContext(connection) as queries:
            assert client.get(URL).status_code == 200
        used.append(len(queries))
    assert used[0] == used[1]


def test_work_queues_show_the_clocks_to_whoever_must_act_overdue_first(world):

    import time_machine

    from ethics import safety
    from tests.ethics.safety_world import beijing

    with time_machine.travel(beijing(2026, 3, 2, 9, 0), tick=False):
        late = record_sae(world, beijing(2026, 3, 1, 8, 0))
        fresh = record_sae(world, beijing(2026, 3, 2, 8, 0))
        safety.safety_send_to_sponsor(event=fresh, actor=world["pi"])
        safety.safety_report_to_ec(event=fresh, actor=world["pi"])
        pi_queue = as_user(world["pi"]).get("/api/v1/work-queue/").json()
        office_queue = as_user(world["ethics_office"]).get("/api/v1/work-queue/").json()
        research_queue = as_user(world["research_office"]).get("/api/v1/work-queue/").json()
    mine = [item for item in pi_queue["items"] if item["kind"].startswith("safety.")]
    assert [item["overdue"] for item in mine] == [True, True]
    assert {item["url"] for item in mine} == {f"/pi/safety/{late.pk}/"}
    review = [item for item in office_queue["items"] if item["kind"] == "safety.committee_review"]
    assert [item["url"] for item in review] == [f"/admin/ethics/safetyevent/{fresh.pk}/change/"]
    assert review[0]["overdue"] is False and review[0]["due_at"].endswith("+08:00")
    overdue = [item for item in research_queue["items"] if item["kind"].startswith("safety.")]
    assert {item["url"] for item in overdue} == {f"/admin/ethics/safetyevent/{late.pk}/change/"}
    stranger = build_world()["research_office"]
    assert not [i for i in as_user(stranger).get("/api/v1/work-queue/").json()["items"] if "safety" in i["kind"]]
