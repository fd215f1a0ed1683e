"""GET /api/v1/work-queue/: what waits on each role, scoped to the caller, at a cost that does not grow."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from cgtclinic.roles import Role
from cgtclinic.workqueue import ITEMS_PER_KIND
from subsidies.models import Claim
from tests.cgtclinic.workqueue_world import hospital
from tests.factories.cgtclinic import UserFactory
from tests.factories.ethics import SubmissionFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/work-queue/"
# The kinds each role's queue has (each may add one capped count when it fills its page).
KINDS = {"ethics_office": 6, "research_office": 5, "pi": 4, "regulator": 3, "system_admin": 4}


def queue_of(user) -> dict:
    client = APIClient()
    client.force_authenticate(user)
    response = client.get(URL)
    assert response.status_code == 200, response.content
    return response.json()


def kinds(body) -> set[str]:
    return {item["kind"] for item in body["items"]}


def counts(body) -> dict[str, int]:
    return {row["kind"]: row["count"] for row in body["counts"]}


def urls(body) -> set[str]:
    return {item["url"] for item in body["items"]}


def admin_url(obj) -> str:
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])


@pytest.fixture
def here(region):
    return hospital(region)


@pytest.fixture
def neighbour(region):
    return hospital(region)


def test_ethics_office_queue_puts_the_overdue_recognition_request_first(here, neighbour):
    body = queue_of(here.ethics_office)
    first = body["items"][0]
    overdue = here.rows["overdue_request"][0]
    assert first["kind"] == "recognition.answer" and first["overdue"] is True
    assert first["url"] == admin_url(overdue)
    assert first["due_at"].endswith("+08:00")  # Beijing time
    assert kinds(body) == {
        "recognition.answer",
        "submission.accept",
        "submission.route",
        "submission.decide",
        "meeting.hold",
        "continuing_review.due",
    }
    assert counts(body) == {
        "recognition.answer": 2,
        "submission.accept": 1,
        "submission.route": 1,
        "submission.decide": 2,
        "meeting.hold": 2,
        "continuing_review.due": 1,
    }
    open_item = next(i for i in body["items"] if i["url"] == admin_url(here.rows["open_request"][0]))
    assert open_item["overdue"] is False and open_item["detail"]  # the working hours left
    # Overdue first, then by due moment, undated last.
    flags = [item["overdue"] for item in body["items"]]
    assert flags == sorted(flags, reverse=True)
    dated = [item["due_at"] for item in body["items"] if not item["overdue"] and item["due_at"]]
    assert dated == sorted(dated)
    # Not the neighbour's, nor a review still waiting for its opinion, nor a meeting whose agenda is decided.
    mine = urls(body)
    assert not mine & urls(queue_of(neighbour.ethics_office))
    assert admin_url(here.rows["still_reviewing"][0]) not in mine
    assert admin_url(here.rows["finished_meeting"][0]) not in mine
    assert admin_url(here.rows["before_meeting"][0]) not in mine  # its meeting has not been held yet
    assert {admin_url(here.rows["after_meeting"][0]), admin_url(here.rows["held_meeting"][0])} <= mine
    assert admin_url(here.rows["continuing_later"][0]) not in mine


def test_research_office_queue_shows_the_escalation_stalled_enrolment_and_draft_claims(here, neighbour):
    request = here.rows["overdue_request"][0]
    assert "recognition.escalated" not in kinds(queue_of(here.research_office))  # not escalated yet
    request.escalated_at = request.due_at
    request.save(update_fields=["escalated_at"])

    body = queue_of(here.research_office)
    assert kinds(body) == {"recognition.escalated", "continuing_review.due", "enrolment.stalled", "claim.prepare"}
    escalated = [item for item in body["items"] if item["kind"] == "recognition.escalated"]
    assert [item["url"] for item in escalated] == [admin_url(request)] and escalated[0]["overdue"] is True
    claim_urls = {i["url"] for i in body["items"] if i["kind"] == "claim.prepare"}
    assert claim_urls == {admin_url(here.rows["draft_claim"][0])}
    assert not urls(body) & urls(queue_of(neighbour.research_office))


def test_pi_queue_links_into_the_portal(here, neighbour):
    trial = here.rows["submitted"][0].trial
    draft = SubmissionFactory(trial=trial, committee=here.rows["submitted"][0].committee, kind="amendment")
    body = queue_of(here.pi)
    assert kinds(body) == {
        "submission.returned",
        "decision.modifications",
        "continuing_review.due",
        "submission.draft",
    }
    assert reverse("ethics_portal:submission_edit", args=[draft.pk]) in urls(body)
    assert all(item["url"].startswith("/pi/") for item in body["items"])
    respond = reverse("ethics_portal:respond", args=[here.rows["modifications"][0].submission_id])
    assert respond in urls(body)
    assert not urls(body) & urls(queue_of(neighbour.pi))


def test_regulator_queue_holds_its_region_submitted_claims_only(here, region):
    body = queue_of(UserFactory(role=Role.REGULATOR, region=region))
    assert kinds(body) == {"claim.review"}
    assert urls(body) == {reverse("claims-detail", args=[here.rows["submitted_claim"][0].pk])}
    elsewhere = queue_of(UserFactory(role=Role.REGULATOR))
    assert elsewhere["items"] == []


def test_system_admin_sees_what_is_overdue_everywhere(here, neighbour, system_admin):
    body = queue_of(system_admin)
    overdue = {i["url"] for i in body["items"] if i["kind"] == "recognition.overdue"}
    assert overdue == {admin_url(here.rows["overdue_request"][0]), admin_url(neighbour.rows["overdue_request"][0])}
    assert all(item["overdue"] for item in body["items"])


def test_system_admin_sees_provisional_deadlines(here, system_admin):
    request = here.rows["open_request"][0]
    request.provisional = True
    request.provisional_years = [2099]
    request.save(update_fields=["provisional", "provisional_years"])
    body = queue_of(system_admin)
    provisional = [i for i in body["items"] if i["kind"] == "recognition.provisional"]
    assert [i["url"] for i in provisional] == [admin_url(request)] and provisional[0]["provisional"] is True


def test_anonymous_is_refused(here):
    assert APIClient().get(URL).status_code in (401, 403)


def test_an_office_of_another_hospital_sees_nothing_of_this_one(here):
    stranger = UserFactory(role=Role.ETHICS_OFFICE)
    assert queue_of(stranger)["items"] == []


@pytest.mark.parametrize("role", ["ethics_office", "research_office", "pi", "regulator", "system_admin"])
def test_query_count_does_not_grow_with_rows(region, role):
    def measure(copies):
        place = hospital(region, copies=copies)
        user = {
            "ethics_office": place.ethics_office,
            "research_office": place.research_office,
            "pi": place.pi,
            "regulator": UserFactory(role=Role.REGULATOR, region=region),
            "system_admin": UserFactory(role=Role.SYSTEM_ADMIN),
        }[role]
        client = APIClient()
        client.force_authenticate(user)
        with CaptureQueriesContext(connection) as queries:
            assert client.get(URL).status_code == 200
        return len(queries)

    small, large = measure(1), measure(ITEMS_PER_KIND + 1)
    # Each kind that fills its page reads one capped count more; nothing else grows with the rows.
    assert small <= large <= small + KINDS[role]
    assert large <= 20


def test_regulator_queue_follows_a_claim_from_review_to_payment(here, region):
    regulator = UserFactory(role=Role.REGULATOR, region=region)
    claim = here.rows["submitted_claim"][0]
    steps = [
        (Claim.Status.UNDER_REVIEW, None, {"claim.decide"}),
        (Claim.Status.APPROVED, None, {"claim.pay"}),
        (Claim.Status.PARTIALLY_APPROVED, None, {"claim.pay"}),
        (Claim.Status.PAID, datetime.date(2026, 6, 1), set()),
        (Claim.Status.REJECTED, None, set()),
    ]
    for status, paid_on, expected in steps:
        claim.status, claim.paid_on = status, paid_on
        claim.save(update_fields=["status", "paid_on"])
        assert kinds(queue_of(regulator)) == expected, status
