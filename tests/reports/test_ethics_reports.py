"""Recognition timeliness (with its overdue requests) and ethics turnaround, against figures computed in the test."""

import datetime
from decimal import Decimal

import pytest
import time_machine
from rest_framework.test import APIClient

from ethics import rollups
from ethics.models import RecognitionRequest, Submission
from tests.factories.ethics import AllianceFactory, EthicsCommitteeFactory, SubmissionFactory
from tests.factories.trials import TrialFactory, TrialSiteFactory
from tests.reports.helpers import median, percentile, report

pytestmark = pytest.mark.django_db
SH = datetime.timezone(datetime.timedelta(hours=8))
NOW = datetime.datetime(2026, 5, 20, 12, 0, tzinfo=SH)
R = RecognitionRequest.Status
ANSWERED = {R.RECOGNISED, R.RECOGNISED_WITH_CONDITIONS, R.DECLINED}


@pytest.fixture(autouse=True)
def now():
    with time_machine.travel(NOW, tick=False):
        yield


def request_to(alliance, committee, *, status, hours=None, late=False, due_in_hours=-1, received_days_ago=10):
    site = TrialSiteFactory(trial=TrialFactory(), institution=committee.institution)
    received = NOW - datetime.timedelta(days=received_days_ago)
    request = RecognitionRequest.objects.create(
        alliance=alliance,
        trial=site.trial,
        site=site,
        committee=committee,
        subject=Submission.Kind.INITIAL,
        status=status,
        received_at=received,
        remind_at=received,
        due_at=NOW + datetime.timedelta(hours=due_in_hours),
        late=late,
        response_working_hours=hours,
    )
    # Made already answered, as recognition_respond would leave it: with its answer fact.
    rollups.refresh_recognition_fact(request.pk)
    return request


@pytest.fixture
def recognition(institution, neighbour, outsider):
    here, there, far = (EthicsCommitteeFactory(institution=i) for i in (institution, neighbour, outsider))
    first = AllianceFactory(name_zh="甲联盟", members=[here, there, far])
    second = AllianceFactory(name_zh="乙联盟", members=[here, there])
    for hours in ("4.5", "12", "30"):
        request_to(first, here, status=R.RECOGNISED, hours=Decimal(hours))
    request_to(first, there, status=R.DECLINED, hours=Decimal("70"), late=True)
    request_to(first, there, status=R.RECOGNISED_WITH_CONDITIONS, hours=Decimal("20"), received_days_ago=200)
    request_to(second, there, status=R.OPEN, due_in_hours=5)
    overdue = [
        request_to(second, here, status=R.OPEN, due_in_hours=-50),
        request_to(first, there, status=R.OPEN, due_in_hours=-3),
    ]
    request_to(second, here, status=R.WITHDRAWN)
    request_to(first, here, status=R.SUPERSEDED)
    request_to(first, far, status=R.OPEN, due_in_hours=-10)  # another region
    return {"overdue": overdue, "alliances": (first, second)}


def in_region(region, **filters):
    return [
        r
        for r in RecognitionRequest.objects.select_related("committee__institution", "alliance").filter(**filters)
        if r.committee.institution.region_id == region.pk and r.status not in (R.WITHDRAWN, R.SUPERSEDED)
    ]


def figures(requests) -> dict:
    answered = [r for r in requests if r.status in ANSWERED]
    hours = [r.response_working_hours for r in answered]
    on_time = sum(not r.late for r in answered)
    return {
        "received": len(requests),
        "answered_on_time": on_time,
        "answered_late": len(answered) - on_time,
        "open": sum(r.status == R.OPEN and r.due_at > NOW for r in requests),
        "overdue": sum(r.status == R.OPEN and r.due_at <= NOW for r in requests),
        "on_time_share": round(on_time / len(answered), 4) if answered else None,
        "median_working_hours": round(median(hours), 2) if hours else None,
        "p90_working_hours": round(percentile(hours, 0.9), 2) if hours else None,
    }


def test_timeliness_per_alliance_and_institution(recognition, regulator, region):
    requests = in_region(region)
    by_alliance = report(regulator, "recognition-timeliness")
    for row in by_alliance["rows"]:
        wanted = figures([r for r in requests if r.alliance_id == row["group_id"]])
        assert {name: row[name] for name in wanted} == pytest.approx(wanted), row["group_name"]
        assert row["group"] == "alliance"
    assert {row["group_id"] for row in by_alliance["rows"]} == {r.alliance_id for r in requests}
    assert by_alliance["summary"] == pytest.approx(figures(requests))

    by_institution = report(regulator, "recognition-timeliness", group_by="institution")
    for row in by_institution["rows"]:
        wanted = figures([r for r in requests if r.committee.institution_id == row["group_id"]])
        assert {name: row[name] for name in wanted} == pytest.approx(wanted)
    assert {row["group_id"] for row in by_institution["rows"]} == {r.committee.institution_id for r in requests}


def test_timeliness_period_and_alliance_filters(recognition, regulator, region):
    recent = report(regulator, "recognition-timeliness", received_from="2026-01-01")
    start = datetime.datetime(2026, 1, 1, tzinfo=SH)
    assert recent["summary"]["received"] == len([r for r in in_region(region) if r.received_at >= start])
    first = recognition["alliances"][0]
    only_first = report(regulator, "recognition-timeliness", alliance=first.pk)
    assert [row["group_id"] for row in only_first["rows"]] == [first.pk]


def test_overdue_requests_longest_first(recognition, regulator, region):
    escalated = recognition["overdue"][0]
    escalated.escalated_at = NOW - datetime.timedelta(hours=2)
    escalated.save(update_fields=["escalated_at"])
    data = report(regulator, "recognition-timeliness")
    wanted = sorted(
        (r for r in in_region(region) if r.status == R.OPEN and r.due_at <= NOW), key=lambda r: (r.due_at, r.pk)
    )
    overdue = data["overdue_requests"]
    assert [column["name"] for column in overdue["columns"]][:2] == ["request_id", "trial_id"]
    assert [row["request_id"] for row in overdue["rows"]] == [r.pk for r in wanted]
    assert [row["request_id"] for row in overdue["rows"]] == [r.pk for r in recognition["overdue"]]
    first = overdue["rows"][0]
    assert first["overdue_days"] == round(50 / 24, 1)
    assert first["due_at"] == wanted[0].due_at.astimezone(SH).isoformat()
    assert first["escalated_at"] == escalated.escalated_at.astimezone(SH).isoformat()
    assert overdue["rows"][1]["escalated_at"] is None
    assert first["institution_name"] == wanted[0].committee.institution.name_zh
    days = [(NOW - r.due_at).total_seconds() / 86400 for r in wanted]
    assert [row["overdue_days"] for row in overdue["rows"]] == [round(d, 1) for d in days]
    assert {row["institution_id"] for row in overdue["rows"]} == {r.committee.institution_id for r in wanted}
    assert overdue["count"] == data["summary"]["overdue"] == len(wanted)

    # The same list as the report's rows, in pages, with the timeliness summary.
    listed = report(regulator, "recognition-timeliness", rows="overdue", page_size=1)
    assert listed["rows"] == overdue["rows"][:1]
    assert [column["name"] for column in listed["columns"]] == [column["name"] for column in overdue["columns"]]
    assert listed["pagination"]["count"] == len(wanted)
    assert listed["summary"] == data["summary"]
    assert "overdue_requests" not in listed
    second = report(regulator, "recognition-timeliness", rows="overdue", page_size=1, page=2)
    assert second["rows"] == overdue["rows"][1:2]
    beyond = report(regulator, "recognition-timeliness", rows="overdue", page=9)
    assert beyond["rows"] == [] and beyond["pagination"]["count"] == len(wanted)


def test_overdue_requests_follow_the_filters(recognition, regulator, region):
    second = recognition["alliances"][1]
    data = report(regulator, "recognition-timeliness", alliance=second.pk)
    assert [row["request_id"] for row in data["overdue_requests"]["rows"]] == [recognition["overdue"][0].pk]
    assert data["overdue_requests"]["count"] == data["summary"]["overdue"] == 1
    none = report(regulator, "recognition-timeliness", received_from="2030-01-01")
    assert none["overdue_requests"] == {"count": 0, "columns": none["overdue_requests"]["columns"], "rows": []}
    assert none["rows"] == [] and none["summary"]["received"] == 0 and none["summary"]["median_working_hours"] is None
    empty = report(regulator, "recognition-timeliness", rows="overdue", received_from="2030-01-01")
    assert empty["rows"] == [] and empty["pagination"]["count"] == 0


def test_overdue_requests_of_other_regions_are_not_listed(recognition, regulator, region, outsider):
    data = report(regulator, "recognition-timeliness", group_by="institution")
    assert outsider.pk not in {row["institution_id"] for row in data["overdue_requests"]["rows"]}
    assert outsider.pk not in {row["group_id"] for row in data["rows"]}


def test_an_unknown_row_set_is_refused(regulator):
    client = APIClient()
    client.force_authenticate(regulator)
    response = client.get("/api/v1/reports/recognition-timeliness/", {"rows": "everything"})
    assert response.status_code == 400
    assert "rows" in response.json()


@pytest.fixture
def submissions(institution, neighbour, outsider):
    """Decided submissions with known days from receipt to decision, some in review, some elsewhere."""
    here, there, far = (EthicsCommitteeFactory(institution=i) for i in (institution, neighbour, outsider))
    made = []

    def decided(committee, review_type, days, kind=Submission.Kind.INITIAL, decided_on=NOW):
        submitted = decided_on - datetime.timedelta(days=days)
        made.append(
            SubmissionFactory(
                trial=TrialFactory(lead_institution=committee.institution),
                committee=committee,
                kind=kind,
                status=Submission.Status.DECIDED,
                review_type=review_type,
                submitted_at=submitted,
                decided_at=decided_on,
            )
        )

    full, fast = Submission.ReviewType.FULL_BOARD, Submission.ReviewType.EXPEDITED
    for days in (20, 35.5, 41, 60):
        decided(here, full, days)
    decided(there, full, 28, kind=Submission.Kind.AMENDMENT)
    decided(there, fast, 3.25)
    decided(here, fast, 7, decided_on=NOW - datetime.timedelta(days=400))
    decided(far, full, 90)
    for status in (Submission.Status.EXPEDITED_REVIEW, Submission.Status.AWAITING_MEETING):
        SubmissionFactory(
            trial=TrialFactory(lead_institution=institution),
            committee=here,
            status=status,
            review_type=fast if status == Submission.Status.EXPEDITED_REVIEW else full,
            submitted_at=NOW - datetime.timedelta(days=5),
        )
    SubmissionFactory(trial=TrialFactory(lead_institution=institution), committee=here, status="submitted")
    return made


def turnaround(region, **match):
    chosen = [
        s
        for s in Submission.objects.select_related("committee__institution")
        if s.committee.institution.region_id == region.pk and all(getattr(s, k) == v for k, v in match.items())
    ]
    days = [(s.decided_at - s.submitted_at).total_seconds() / 86400 for s in chosen if s.status == "decided"]
    return {
        "decided": len(days),
        "median_days": round(median(days), 1) if days else None,
        "p90_days": round(percentile(days, 0.9), 1) if days else None,
        "mean_days": round(sum(days) / len(days), 1) if days else None,
        "max_days": round(max(days), 1) if days else None,
        "in_review": sum(s.status in ("expedited_review", "awaiting_meeting") for s in chosen),
    }


def test_turnaround_per_review_type(submissions, regulator, region):
    data = report(regulator, "ethics-turnaround")
    rows = {row["review_type"]: row for row in data["rows"]}
    assert set(rows) == {"full_board", "expedited"}
    for review_type, row in rows.items():
        wanted = turnaround(region, review_type=review_type)
        assert {name: row[name] for name in wanted} == wanted
        assert row["review_type_label"] == str(Submission.ReviewType(review_type).label)
    assert data["summary"] == turnaround(region)


def test_turnaround_by_kind_institution_and_period(submissions, regulator, region, neighbour):
    data = report(regulator, "ethics-turnaround", group_by="kind,institution")
    row = next(r for r in data["rows"] if r["kind"] == "amendment")
    assert (row["institution_id"], row["decided"], row["median_days"]) == (neighbour.pk, 1, 28.0)
    assert row["kind_label"] == str(Submission.Kind.AMENDMENT.label)
    recent = report(regulator, "ethics-turnaround", decided_from="2026-01-01")
    assert recent["summary"]["decided"] == turnaround(region)["decided"] - 1
    assert recent["summary"]["in_review"] == turnaround(region)["in_review"]
